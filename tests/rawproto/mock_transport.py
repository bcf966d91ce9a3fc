"""A mock transport and a loop with a virtual clock, to drive ``Connection`` without sockets.

As uvicorn's protocol tests do, a test feeds bytes to the connection's
``data_received`` and looks at what reached the transport: writes, EOF,
pauses, close and abort. Deadlines run on ``VirtualClockLoop``, whose time
moves only when a test calls ``advance``: timers fire in order and at once,
and nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from dataserve.core.limits import DEFAULT_LIMITS, Limits
from rawproto.engine import Connection, Session
from rawproto.engine.registry import Registry

T = TypeVar("T")


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is a number the test moves forward."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        """Move the clock and let every timer now due, and what it starts, run."""
        self.now += seconds
        for _ in range(10):  # what the timers start may schedule more: let it run too
            await asyncio.sleep(0)


def run_virtual(main: Callable[[VirtualClockLoop], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(loop)`` on a fresh ``VirtualClockLoop``."""
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        # Requests a test left waiting end here, not as "destroyed but pending".
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left))
        loop.close()


class MockTransport:
    """Records what a protocol does to its transport.

    ``buffered`` is what the kernel has not taken yet: ``set_buffered`` moves
    it, and the transport tells the protocol to pause and resume writing
    around its water marks as asyncio's transports do.
    """

    def __init__(self, *, can_write_eof: bool = True) -> None:
        self.protocol: asyncio.Protocol | None = None
        self.writes: list[bytes | list[bytes]] = []
        self.marks: list[tuple[int | None, int | None]] = []
        self.reading = True
        self.pauses = 0
        self.eof_written = False
        self.closed = False
        self.aborted = False
        self.buffered = 0
        self.high = self.low = 0
        self.writing_paused = False
        self._can_write_eof = can_write_eof
        self._write_waiter: asyncio.Future[None] | None = None

    # What the connection reads.

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 7000)}.get(
            name, default
        )

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def can_write_eof(self) -> bool:
        return self._can_write_eof

    def is_closing(self) -> bool:
        return self.closed

    # What the connection does.

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.marks.append((high, low))
        self.high, self.low = high or 0, low or 0
        self._maybe_pause()

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._wrote()

    def writelines(self, data: list[bytes]) -> None:
        self.writes.append([bytes(d) for d in data])
        self._wrote()

    def _wrote(self) -> None:
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self._lose(None)

    def abort(self) -> None:
        self.aborted = True
        self._lose(None)

    def _lose(self, exc: Exception | None) -> None:
        # As asyncio's transports: connection_lost follows on the next turn.
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                asyncio.get_running_loop().call_soon(self.protocol.connection_lost, exc)

    # What the test does: the peer reads, or stops reading.

    async def next_write(self, timeout: float = 10.0) -> None:
        """Wait for the protocol's next write (a handler thread answers through the loop)."""
        self._write_waiter = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(self._write_waiter, timeout)

    def set_buffered(self, size: int) -> None:
        """The write buffer now holds ``size`` bytes."""
        self.buffered = size
        if self.writing_paused and size <= self.low:
            self.writing_paused = False
            assert self.protocol is not None
            self.protocol.resume_writing()
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        if not self.writing_paused and self.buffered > self.high and self.protocol is not None:
            self.writing_paused = True
            self.protocol.pause_writing()

    # What the test reads.

    def sent(self) -> bytes:
        """Every byte written so far, in order."""
        return b"".join(b"".join(w) if isinstance(w, list) else w for w in self.writes)


def connect(
    factory: Callable[[Connection], Session],
    *,
    limits: Limits = DEFAULT_LIMITS,
    registry: Registry | None = None,
    transport: MockTransport | None = None,
) -> tuple[Connection, MockTransport]:
    """A ``Connection`` made by ``factory`` and already on a ``MockTransport``."""
    registry = registry or Registry(limits)
    conn = Connection(factory, registry)
    transport = transport or MockTransport()
    transport.protocol = conn
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport
