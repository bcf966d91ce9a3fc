"""Event loops for rawproto: uvloop when installed, and one shared background loop.

``run(coro)`` runs a coroutine to completion on a new loop (the blocking
``serve()`` calls). ``LoopThread.shared()`` is a daemon thread running one
loop for everything that offers a blocking API over the engine (the
tinyproto facade, ``BackgroundRawServer``).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "new_event_loop", "run"]

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on ``new_event_loop()``."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(main)
    loop = new_event_loop()  # pragma: no cover - Python 3.10
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


class LoopThread:
    """A daemon thread running an event loop, for blocking APIs over the engine."""

    _shared: LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self, name: str = "rawproto-loop") -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls) -> LoopThread:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (from another thread)."""
        if self.in_loop_thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from the loop's own thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)
