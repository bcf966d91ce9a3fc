"""The registry of one server's open connections (or of one client's outgoing ones).

It is what every connection of a server shares: the limits, the connection
limit and the counter told of each connection, the set of connections open
now, whether a graceful shutdown began (``RawServer.stop`` sets it, and
waits on ``all_closed``), and the buffer reads land in.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from dataserve.core.buffer_cache import BufferCache
from dataserve.core.limits import Limits

from ..proto.base import FrameError
from .session import ConnectionCounter

__all__ = ["READ_SIZE", "Member", "Registry"]

#: How much one read takes at most. Small frames pipelined come many to a read
#: all the same; a large payload's first read is copied twice (into the
#: protocol's buffer, then to the front of the payload's own), so it is kept short.
READ_SIZE = 64 * 1024


class Member(Protocol):
    """What a server asks of each of its connections (``Connection``, ``OneShot``)."""

    def _begin_shutdown(self) -> None:
        """Graceful shutdown began: close now if quiet, else once answered."""

    def _abandon(self) -> None:
        """The grace period is over: answer what is left, then close."""

    def abort(self) -> None:
        """Close at once."""


class Registry:
    """The open connections of one server (or of one client's outgoing ones)."""

    def __init__(
        self,
        limits: Limits,
        max_connections: int | None = None,
        counter: ConnectionCounter | None = None,
    ) -> None:
        self.limits = limits
        #: Where large payloads' buffers come from (``None``: new every time).
        self.buffer_cache = BufferCache.from_limits(limits)
        self.max_connections = max_connections
        self.counter = counter
        self.connections: set[Member] = set()
        self.closing = False
        self.all_closed: asyncio.Event | None = None
        self._read: memoryview | None = None

    def read_buffer(self) -> memoryview:
        """The buffer the connections read into (one at a time: the loop is one thread)."""
        buffer = self._read
        if buffer is None:
            buffer = self._read = memoryview(bytearray(READ_SIZE))
        return buffer

    def refusal(self) -> FrameError | None:
        """Why a new connection is refused (503: over the limit, or shutting down), or
        ``None`` when it is welcome."""
        if self.closing:
            return FrameError("the server is shutting down", 503)
        limit = self.max_connections
        if limit is not None and len(self.connections) >= limit:
            return FrameError(f"the server is at its limit of {limit} connections", 503)
        return None

    def removed(self) -> None:
        if not self.connections and self.all_closed is not None:
            self.all_closed.set()
