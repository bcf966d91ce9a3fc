"""Flow control: whether a connection reads from its peer, and who waits to write.

As in uvicorn's ``flow_control.py``: the transport says when its write
buffer rises above the high-water mark (``pause_writing``) and falls below
the low one (``resume_writing``); writers wait in between (``waiter()``).
Reading is paused and resumed on the transport only when the decision
changes, so asking twice costs nothing. What decides to pause reading
(requests in flight, a session's backlog, a peer that does not read) is the
connection's business; this class only remembers and applies it.

The high-water mark is also the **output cap**: answers queued for a peer
that does not read them stop the connection from taking new requests, and
``gate`` (an ``OutputGate``, the ``dataserve.core.exchange.Gate`` of this
connection) is shut meanwhile, so a ``def`` handler call already queued for
the connection waits, unstarted, instead of adding its answer to the queue.
While writing is paused, ``write_left`` is what the transport still held at
the last check: a peer that took nothing of it for ``send_timeout`` is cut
(``rawproto.engine.deadlines``), one that reads slowly is not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

__all__ = ["WRITE_HIGH_WATER", "WRITE_LOW_WATER", "FlowControl", "OutputGate"]

# Write buffer marks: above HIGH the engine stops reading from the peer;
# drain() waits for LOW. Large enough for a few replies of a pipelined burst.
WRITE_HIGH_WATER = 512 * 1024
WRITE_LOW_WATER = 128 * 1024


class OutputGate:
    """Whether a connection's handlers may start: its peer takes what it is sent.

    ``open`` is read by handler threads; ``when_open`` callbacks run on the
    loop when the gate opens again (never if the connection is lost first).
    ``cap`` (the high-water mark) and ``calls`` are what the exchange bounds
    the answers made on handler threads with (``dataserve.core.exchange.Gate``).
    """

    __slots__ = ("_waiting", "calls", "open")

    #: Bytes of answers made on handler threads that may wait for the transport.
    cap = WRITE_HIGH_WATER

    def __init__(self) -> None:
        self.open = True
        self.calls: set[Any] = set()
        self._waiting: list[Callable[[], None]] = []

    def when_open(self, callback: Callable[[], None]) -> None:
        if self.open:
            callback()
        else:
            self._waiting.append(callback)

    def shut(self) -> None:
        self.open = False

    def reopen(self) -> None:
        self.open = True
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback()

    def clear(self) -> None:
        """The connection is gone: nothing waits any more."""
        self._waiting.clear()


class FlowControl:
    """The reading and writing state of one connection's transport."""

    __slots__ = (
        "_transport",
        "_waiters",
        "gate",
        "read_paused",
        "write_left",
        "write_paused",
        "write_paused_at",
    )

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self.read_paused = False
        #: The transport's write buffer is above its high-water mark ...
        self.write_paused = False
        #: ... since this loop time, or the last time the peer took some of it ...
        self.write_paused_at = 0.0
        #: ... when the buffer held this much (a peer that takes nothing is cut).
        self.write_left = 0
        self.gate = OutputGate()

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
        self.write_left = self._buffered()
        self.gate.shut()

    def progressed(self, now: float) -> bool:
        """While writing is paused: did the peer take anything since the last check?
        If so the send deadline starts again from ``now``."""
        left = self._buffered()
        if left >= self.write_left:
            return False
        self.write_left = left
        self.write_paused_at = now
        return True

    def _buffered(self) -> int:
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def resume_writing(self) -> None:
        self.write_paused = False
        self.gate.reopen()
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
        self.gate.clear()
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
