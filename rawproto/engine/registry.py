"""The registry of one server's open connections (or of one client's outgoing ones).

It is what every connection of a server shares: the limits, the connection
limit and the counter told of each connection, the set of connections open
now, and whether a graceful shutdown began (``RawServer.stop`` sets it, and
waits on ``all_closed``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dataserve.core.limits import Limits

from .session import ConnectionCounter

if TYPE_CHECKING:
    from . import Connection

__all__ = ["Registry"]


class Registry:
    """The open connections of one server (or of one client's outgoing ones)."""

    def __init__(
        self,
        limits: Limits,
        max_connections: int | None = None,
        counter: ConnectionCounter | None = None,
    ) -> None:
        self.limits = limits
        self.max_connections = max_connections
        self.counter = counter
        self.connections: set[Connection] = set()
        self.closing = False
        self.all_closed: asyncio.Event | None = None

    def removed(self) -> None:
        if not self.connections and self.all_closed is not None:
            self.all_closed.set()
