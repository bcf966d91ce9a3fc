"""Flow control for one HTTP connection: why reading is paused, and writes a peer never takes.

Reading stops for several independent reasons (requests queued behind the
one being answered, a streamed body the app has not taken yet, a body that
is over its limit) and must resume only when none is left: a single flag,
as in uvicorn, lets the app's ``receive()`` resume reading while requests
are still queued, and a client pipelining without reading its replies then
grows the server without bound. ``ReadFlow`` keeps the reasons.

``WriteFlow`` waits for the transport's buffer to drain (``drain()``), and
cuts a peer that stops reading: while writing is paused, a deadline of
``send_timeout`` is checked against the size of what is still buffered; a
peer that took nothing since the last check is aborted, which releases the
reply it was holding. A slow reader that keeps reading keeps its connection
(nginx's ``send_timeout`` has the same meaning: between two successful
writes, not for the whole reply).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ..core.deadlines import Deadline, Watchdog

__all__ = ["BODY", "PIPELINE", "REFUSED", "ReadFlow", "WriteFlow"]

#: Requests queued behind the one being answered reached the bound.
PIPELINE = 1
#: A streamed body waits for the app to take it.
BODY = 2
#: The body crossed its limit, or the connection is closing: read no more.
REFUSED = 4


class ReadFlow:
    """Pauses the transport's reading while any reason holds it."""

    __slots__ = ("_reasons", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._reasons = 0

    @property
    def paused(self) -> bool:
        return self._reasons != 0

    def holds(self, reason: int) -> bool:
        return bool(self._reasons & reason)

    def hold(self, reason: int) -> None:
        if not self._reasons:
            with contextlib.suppress(RuntimeError):  # a transport closing under us
                self._transport.pause_reading()
        self._reasons |= reason

    def release_all(self) -> None:
        """Read whatever comes (a closing connection drops it)."""
        if self._reasons:
            self._reasons = 0
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()

    def release(self, reason: int) -> None:
        if not self._reasons & reason:
            return
        self._reasons &= ~reason
        if not self._reasons:
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()


class WriteFlow:
    """Write-side flow control with a progress deadline (``send_timeout``)."""

    __slots__ = (
        "_deadline",
        "_left",
        "_on_stall",
        "_timeout",
        "_transport",
        "_waiters",
        "_watchdog",
    )

    def __init__(
        self,
        transport: Any,
        watchdog: Watchdog,
        send_timeout: float,
        on_stall: Callable[[], None],
    ) -> None:
        self._transport = transport
        self._watchdog = watchdog
        self._timeout = send_timeout
        self._on_stall = on_stall
        self._waiters: list[asyncio.Future[None]] = []
        self._deadline: Deadline | None = None
        self._left = 0

    @property
    def paused(self) -> bool:
        return self._deadline is not None

    def pause(self) -> None:
        """The transport's buffer went above its high-water mark."""
        if self._deadline is None:
            self._left = self._transport.get_write_buffer_size()
            self._deadline = self._watchdog.call_later(self._timeout, self._check)

    def resume(self) -> None:
        """The buffer fell below its low-water mark: writers go on."""
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None
        self._wake()

    def lost(self) -> None:
        """The connection is gone: nobody waits for a drain any more."""
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None
        self._wake()

    async def drain(self) -> None:
        if self._deadline is None:
            return
        waiter = self._watchdog.loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _check(self) -> None:
        left = self._transport.get_write_buffer_size()
        if left < self._left:
            # The peer took something: it is slow, not gone.
            self._left = left
            self._deadline = self._watchdog.call_later(self._timeout, self._check)
            return
        self._deadline = None
        self._on_stall()
