"""Flow control: whether a connection reads from its peer, and who waits to write.

As in uvicorn's ``flow_control.py``: the transport says when its write
buffer rises above the high-water mark (``pause_writing``) and falls below
the low one (``resume_writing``); writers wait in between (``waiter()``).
Reading is paused and resumed on the transport only when the decision
changes, so asking twice costs nothing. What decides to pause reading
(requests in flight, a session's backlog, a peer that does not read) is the
connection's business; this class only remembers and applies it.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["WRITE_HIGH_WATER", "WRITE_LOW_WATER", "FlowControl"]

# Write buffer marks: above HIGH the engine stops reading from the peer;
# drain() waits for LOW. Large enough for a few replies of a pipelined burst.
WRITE_HIGH_WATER = 512 * 1024
WRITE_LOW_WATER = 128 * 1024


class FlowControl:
    """The reading and writing state of one connection's transport."""

    __slots__ = ("_transport", "_waiters", "read_paused", "write_paused", "write_paused_at")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self.read_paused = False
        #: The transport's write buffer is above its high-water mark ...
        self.write_paused = False
        #: ... since this loop time (a peer that reads nothing is given up on).
        self.write_paused_at = 0.0

    def attach(self, transport: asyncio.Transport) -> None:
        """The connection is up: apply the water marks to its transport."""
        self._transport = transport
        self.normal_marks()

    # --- reading ------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.read_paused and self._transport is not None:
            self.read_paused = True
            with contextlib.suppress(RuntimeError):  # the transport is closing
                self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self._transport is not None:
            self.read_paused = False
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()

    # --- writing ------------------------------------------------------------------

    def pause_writing(self, now: float) -> None:
        self.write_paused = True
        self.write_paused_at = now

    def resume_writing(self) -> None:
        self.write_paused = False
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future done once writing resumes (failed if the connection closes first)."""
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        return waiter

    def fail_waiters(self, reason: str) -> None:
        """The connection closes: every writer waiting gets ``ConnectionResetError``."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError(reason))
        self._waiters.clear()

    def empty_marks(self) -> None:
        """Marks of 0: the transport pauses writing until its buffer is empty."""
        assert self._transport is not None
        self._transport.set_write_buffer_limits(high=0, low=0)

    def normal_marks(self) -> None:
        assert self._transport is not None
        self._transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
