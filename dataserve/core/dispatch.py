"""Calling handlers from an event loop, the same way for every transport.

* ``async def`` handlers run on the event loop: no thread hop.
* ``def`` handlers run off the loop on a ``HandlerPool`` so a blocking handler
  never stalls other connections or the accept loop. By default the pool has
  one thread: calls are serialised like the original single-threaded servers,
  so a handler that keeps state in globals needs no locks. ``threads=N`` lets N
  run at once.
* ``@inline`` marks a ``def`` handler that never blocks; it runs on the loop,
  the fastest path.

The hop to the pool is on the hot path, so it is amortised both ways: a
worker that wakes up takes every queued call (its share, with several
threads) and runs them back to back, and hands the results to the loop in one
``call_soon_threadsafe`` per batch instead of one per call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import inspect
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["Dispatcher", "HandlerPool", "inline", "is_async", "is_inline"]

F = TypeVar("F", bound=Callable[..., Any])

_INLINE_ATTR = "__dataserve_inline__"
# A batch's results are handed back at the latest this long after the first
# of them was ready, so one slow call cannot hold back the fast ones before it.
_FLUSH_AFTER = 0.0005


def inline(fn: F) -> F:
    """Mark a ``def`` handler that never blocks: it runs on the event loop."""
    setattr(fn, _INLINE_ATTR, True)
    return fn


def is_inline(fn: Callable[..., Any]) -> bool:
    return bool(getattr(fn, _INLINE_ATTR, False))


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns an awaitable (``async def``, or such a ``__call__``)."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects
    return call is not None and inspect.iscoroutinefunction(call)


_Job = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]
_Result = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _deliver(results: list[_Result]) -> None:
    for fut, value, exc in results:
        if fut.done():  # cancelled while the handler ran: nobody waits
            continue
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)


class HandlerPool:
    """Runs ``def`` handlers on up to ``threads`` threads, in batches.

    Threads start on demand and are daemons, so a handler that hangs forever
    cannot keep the process alive after the server has stopped. Calls wait in
    a ``queue.SimpleQueue``: putting one there from the loop is a C call with
    no Python-level lock, and a waiting thread wakes without a condition
    variable's bookkeeping.

    **Stuck threads.** A thread cannot be stopped, so a call given up on past
    its deadline (``abandon(future)``, from the caller's handler timeout)
    leaves its thread *stuck*: it no longer counts, the calls it had taken
    go back to the queue, and a replacement thread serves them, as long as
    no more than ``max_stuck`` threads are stuck at once. A stuck thread that
    finally returns drops its late answer, and rejoins or exits depending on
    whether the pool still lacks a thread. With ``max_stuck`` threads stuck
    and every other one too, ``exhausted`` is true (readiness then answers
    503). Only while a call overruns its deadline can calls of a one-thread
    pool overlap: its replacement runs while the abandoned call goes on.
    """

    def __init__(
        self, threads: int = 1, name: str = "dataserve-handler", max_stuck: int = 8
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        if max_stuck < 0:
            raise ValueError(f"max_stuck cannot be negative, not {max_stuck}")
        self.threads = threads
        self.max_stuck = max_stuck
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the fields below but _running
        self._workers: list[threading.Thread] = []  # live threads (stuck ones not)
        self._stuck: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for a call
        self._queued = 0  # calls queued and not yet taken by a thread
        self._closed = False
        self._started = 0
        # Each thread's batch (calls taken, not started) and the call it runs:
        # read and changed by single atomic operations, so no lock per call.
        self._batches: dict[threading.Thread, collections.deque[_Job]] = {}
        self._running: dict[threading.Thread, asyncio.Future[Any]] = {}

    @property
    def busy(self) -> int:
        """Threads running a call now, stuck ones included."""
        return len(self._running)

    @property
    def stuck(self) -> int:
        """Threads still running a call that was given up on past its deadline."""
        return len(self._stuck)

    def started(self, fut: asyncio.Future[Any]) -> bool:
        """Whether the call behind ``fut`` is running now (not queued, not done)."""
        return any(f is fut for f in list(self._running.values()))

    @property
    def exhausted(self) -> bool:
        """Every thread is stuck and no replacement may start: no call can run."""
        return len(self._stuck) >= self.threads + self.max_stuck

    @property
    def activity(self) -> tuple[int, int]:
        """``(busy, queued)``: threads running a call now, calls waiting for one
        (in the queue, or taken by a thread in its batch and not started)."""
        with self._lock:
            waiting = self._queued + sum(len(batch) for batch in self._batches.values())
            return len(self._running), waiting

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Queue ``fn(*args, **kwargs)``; the future completes on the calling loop."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        # The caller's context goes along (as asyncio.to_thread does), so
        # context variables such as the request id reach the handler.
        job = (loop, fut, contextvars.copy_context(), fn, args, kwargs)
        with self._lock:  # so no call can land behind close()'s end marker
            if self._closed:
                raise RuntimeError("the handler pool is closed")
            self._jobs.put(job)
            self._queued += 1
            self._spawn_if_needed()
        return fut

    def abandon(self, fut: asyncio.Future[Any]) -> None:
        """The call behind ``fut`` is given up on (its deadline passed); on the loop.

        Not started yet, it never will be. Running, its thread is stuck: the
        calls that thread had taken go back to the queue, for a replacement.
        """
        fut.cancel()
        with self._lock:
            thread = next((t for t, f in self._running.items() if f is fut), None)
            if thread is None or thread in self._stuck:
                return
            self._stuck.add(thread)
            self._workers.remove(thread)
            batch = self._batches.get(thread)
            while batch:
                try:
                    job = batch.popleft()  # the thread may take one back: atomic either way
                except IndexError:
                    break
                self._jobs.put(job)
                self._queued += 1
            self._spawn_if_needed()

    def _spawn_if_needed(self) -> None:
        # Under the lock. Each idle thread will take at least one queued call;
        # a call beyond those gets a thread of its own, up to the limit (stuck
        # threads do not count, as long as no more than max_stuck are).
        if (
            self._queued > self._idle
            and len(self._workers) < self.threads
            and len(self._stuck) <= self.max_stuck
        ):
            t = threading.Thread(
                target=self._work, name=f"{self._name}-{self._started}", daemon=True
            )
            self._started += 1
            self._workers.append(t)
            t.start()

    def _take(self, me: threading.Thread) -> collections.deque[_Job] | None:
        with self._lock:
            self._idle += 1
        job = self._jobs.get()
        batch: collections.deque[_Job] = collections.deque()
        if job is not None:
            batch.append(job)
            # One thread takes every queued call; several take a fair share
            # each, so the others can run in parallel.
            n = self._jobs.qsize()
            for _ in range(n if self.threads == 1 else n // self.threads):
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    break
                batch.append(job)
        with self._lock:
            self._idle -= 1
            self._queued -= len(batch)
            self._batches[me] = batch
        if job is None:
            self._jobs.put(None)  # closed: the other threads see it too
            if not batch:
                return None
        return batch

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            batch = self._take(me)
            if batch is None:
                return
            self._run(batch, me)
            # Nothing of the batch may stay referenced from this frame while the
            # thread waits for the next one: a 1 GiB payload would stay alive.
            del batch
            if me in self._stuck:
                with self._lock:
                    # Back from an abandoned call. Rejoin if the pool lacks a
                    # thread, else leave the place to the replacement.
                    self._stuck.discard(me)
                    if len(self._workers) >= self.threads or self._closed:
                        return
                    self._workers.append(me)

    def _run(self, batch: collections.deque[_Job], me: threading.Thread) -> None:
        pending: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
        first_ready = 0.0
        running = self._running
        while True:
            try:
                loop, fut, context, fn, args, kwargs = batch.popleft()
            except IndexError:
                break
            if fut.cancelled():
                continue  # given up on before it started
            running[me] = fut
            try:
                item: _Result = (fut, context.run(fn, *args, **kwargs), None)
            except BaseException as exc:  # handed to the awaiting coroutine
                item = (fut, None, exc)
            finally:
                del running[me]
            del fn, args, kwargs
            pending.setdefault(loop, []).append(item)
            del item
            now = time.perf_counter()
            if not first_ready:
                first_ready = now
            elif now - first_ready > _FLUSH_AFTER:
                self._flush(pending)
                first_ready = 0.0
        self._flush(pending)

    @staticmethod
    def _flush(pending: dict[asyncio.AbstractEventLoop, list[_Result]]) -> None:
        for loop, results in pending.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                loop.call_soon_threadsafe(_deliver, results)
        pending.clear()

    def close(self, wait: float | None = None) -> None:
        """Stop the threads once the queue is empty; wait up to ``wait`` seconds
        (for the live threads: stuck ones are abandoned)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)  # after every queued call: they run first
            workers = list(self._workers)
        if wait:
            deadline = time.monotonic() + wait
            for t in workers:
                t.join(max(0.0, deadline - time.monotonic()))


class Dispatcher:
    """Turns any handler callable into an awaitable call with the right policy."""

    def __init__(
        self, threads: int = 1, name: str = "dataserve-handler", max_stuck: int = 8
    ) -> None:
        self.pool = HandlerPool(threads, name, max_stuck)

    def prepare(self, fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """Return an ``async`` callable that runs ``fn`` by its policy.

        Decided once per handler, not per call: ``async def`` is returned as it
        is, ``@inline`` is wrapped to run on the loop, any other callable is
        sent to the pool.
        """
        if is_async(fn):
            return fn
        if is_inline(fn):

            async def run_inline(*args: Any) -> Any:
                return fn(*args)

            return run_inline
        return functools.partial(self.pool.submit, fn)

    def close(self, wait: float | None = None) -> None:
        self.pool.close(wait)
