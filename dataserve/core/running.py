"""Running servers: event loops, the shared loop thread, and serving until a signal.

Every runner of the project goes through here, HTTP and raw TCP alike:

- ``serve_until_signalled(serve)`` is the foreground run: it runs
  ``serve(stop)`` on a new event loop, sets ``stop`` on the first Ctrl-C
  (SIGINT) or SIGTERM, and returns once ``serve`` has shut down gracefully.
  ``run_http_server``, ``rawproto.serve`` and the facades' blocking calls
  (tcpy's ``listen()``, pyts' ``startServer()``) use it.
- ``LoopThread.shared()`` is the one daemon thread running an event loop for
  everything that offers a blocking API over asyncio: background servers
  (HTTP, callback, native, facades) and the facades' blocking clients.
- ``catch_signals`` is the one place where signal handlers are installed,
  for the runners that do not run a loop of their own in the main thread
  (tinyproto's ``start()``, uvicorn's worker supervisor, the drain delay).

Signals can only be caught in the main thread: elsewhere nothing is
installed and a foreground run serves until its ``stop`` is set otherwise
(or the process ends).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from types import FrameType
from typing import Any, TypeVar

__all__ = [
    "SIGNALS",
    "START_TIMEOUT",
    "LoopThread",
    "catch_signals",
    "exit_quietly_on_signals",
    "new_event_loop",
    "run",
    "serve_until_signalled",
]

T = TypeVar("T")

#: The signals that stop a server gracefully: Ctrl-C and ``kill``/``docker stop``.
SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)

#: Seconds a background server may take to start listening.
START_TIMEOUT = 30.0

SignalHandler = Callable[[int, FrameType | None], Any]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T], *, loop_factory: LoopFactory | None = None) -> T:
    """``asyncio.run(main)`` on a loop from ``loop_factory`` (default ``new_event_loop``)."""
    factory = loop_factory or new_event_loop
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    loop = factory()  # pragma: no cover - Python 3.10
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# --- signals -----------------------------------------------------------------


def catch_signals(
    handler: SignalHandler,
    signals: Iterable[int] = SIGNALS,
    *,
    keep_later: bool = False,
) -> Callable[[], None]:
    """Route ``signals`` to ``handler(signum, frame)``; returns the undo.

    The undo puts the previous handlers back; with ``keep_later=True`` only
    where ours is still installed (a handler set after ours stays). In a
    thread other than the main one this installs nothing and the undo does
    nothing.

    ``signal.signal``, not ``loop.add_signal_handler``: it works with or
    without a running loop, and a handler set later (the drain delay) can
    wrap this one with ``signal.getsignal``. A handler that must reach a
    loop does it with ``loop.call_soon_threadsafe``, which is signal-safe.
    """
    if threading.current_thread() is not threading.main_thread():
        return _nothing
    previous: dict[int, Any] = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
    except BaseException:
        for sig, old in previous.items():
            signal.signal(sig, old)
        raise

    def undo() -> None:
        for sig, old in previous.items():
            if keep_later and signal.getsignal(sig) is not handler:
                continue
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, old)

    return undo


class _Signalled(Exception):
    pass


def _raise_signalled(signum: int, frame: FrameType | None) -> None:
    raise _Signalled(signum)


@contextlib.contextmanager
def exit_quietly_on_signals(signals: Iterable[int] = SIGNALS) -> Iterator[None]:
    """Return normally when a signal ends the block, instead of dying of it.

    For a runner that handles the signals itself once it is going (uvicorn's
    worker supervisor): a signal that arrives before it has installed its
    handlers, or after it has put ours back, ends the block quietly, as
    Ctrl-C does, and the caller exits 0 rather than -15.
    """
    undo = catch_signals(_raise_signalled, signals)
    try:
        yield
    except (KeyboardInterrupt, _Signalled):
        pass
    finally:
        undo()


def serve_until_signalled(
    serve: Callable[[asyncio.Event], Awaitable[Any]],
    *,
    on_signal: Callable[[int], None] | None = None,
    signals: Iterable[int] = SIGNALS,
    loop_factory: LoopFactory | None = None,
) -> int | None:
    """Run ``serve(stop)`` on a new event loop until it returns; a signal sets ``stop``.

    ``serve`` starts its server, waits for ``stop`` (an ``asyncio.Event``)
    and then stops gracefully: requests in flight finish. Every one of
    ``signals`` (Ctrl-C and SIGTERM) that arrives while it runs sets
    ``stop`` and calls ``on_signal(signum)`` on the loop, the first one
    included (uvicorn: the second Ctrl-C does not wait any more); one that
    arrives while the loop is being made is delivered once it runs. The
    previous handlers are back when this returns.

    Returns the first signal caught, or ``None`` when ``serve`` returned by
    itself. A Ctrl-C before the handlers are installed ends it quietly too
    (``None``); any exception from ``serve`` is raised here.
    """
    caught: list[int] = []
    # Installed before the loop is made, so that a signal is never missed:
    # until the loop runs, signals wait in ``early``; then they go to the loop.
    # Handlers run between the main thread's bytecodes, never inside one.
    early: list[int] | None = []
    forward: Callable[[int], None] | None = None

    def handler(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)
        if early is not None:
            early.append(signum)
        elif forward is not None:
            forward(signum)

    async def main() -> Any:
        nonlocal early, forward
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_loop(signum: int) -> None:
            stop.set()
            if on_signal is not None:
                on_signal(signum)

        def to_loop(signum: int) -> None:
            loop.call_soon_threadsafe(on_loop, signum)

        forward = to_loop
        waiting, early = early, None
        for signum in waiting or ():
            on_loop(signum)
        return await serve(stop)

    undo = catch_signals(handler, signals)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run(main(), loop_factory=loop_factory)
    finally:
        undo()
    return caught[0] if caught else None


# --- the loop thread -----------------------------------------------------------


class LoopThread:
    """A daemon thread running an event loop, for blocking APIs over asyncio.

    ``submit(coro)`` schedules a coroutine from any thread and returns its
    ``concurrent.futures.Future``; ``run(coro, timeout)`` waits for its
    result, and raises what the coroutine raised. ``stop()`` ends the loop
    and joins the thread. ``LoopThread.shared()`` is the one every
    background server and blocking client of the process shares (created on
    first use; a stopped one is replaced).
    """

    _shared: LoopThread | None = None
    _lock = threading.Lock()

    def __init__(
        self, name: str = "dataserve-background-loop", *, loop_factory: LoopFactory | None = None
    ) -> None:
        self.loop = (loop_factory or new_event_loop)()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls) -> LoopThread:
        with cls._lock:
            if cls._shared is None or not cls._shared.is_alive():
                cls._shared = cls()
            return cls._shared

    @classmethod
    def in_shared_thread(cls) -> bool:
        """Is the caller the shared loop's thread? (Starts no loop to find out.)"""
        shared = cls._shared
        return shared is not None and shared.in_loop_thread

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self._close()

    def _close(self) -> None:
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            gather = asyncio.gather(*pending, return_exceptions=True)
            self.loop.run_until_complete(gather)
        with contextlib.suppress(RuntimeError):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        self.loop.close()

    @property
    def in_loop_thread(self) -> bool:
        """Is the caller this loop's own thread (where waiting on it never ends)?"""
        return threading.current_thread() is self._thread

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop from any thread; its future."""
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop is closed
            coro.close()
            raise

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (from another thread).

        Raises what ``coro`` raised, or ``TimeoutError`` after ``timeout``
        seconds (the coroutine goes on).
        """
        if self.in_loop_thread:
            coro.close()
            raise RuntimeError(f"{type(self).__name__}.run called from the loop's own thread")
        return self.submit(coro).result(timeout)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` on the loop, from any thread."""
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float | None = None) -> None:
        """End the loop (its tasks are cancelled) and join the thread."""
        if self.in_loop_thread:
            raise RuntimeError(f"{type(self).__name__}.stop called from the loop's own thread")
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        with type(self)._lock:
            if type(self)._shared is self:
                type(self)._shared = None


def _nothing() -> None:
    return None
