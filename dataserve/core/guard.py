"""A handler call under the handler deadline, for transports with handlers of their own shape.

The data endpoints answer through ``dataserve.core.exchange``; the seeds'
facades (the callback API, tcpy, pyts) call handlers that take and return
other things (a request dict, a tcpy handler class, a pyts request and
response), but must end the same way. ``Guard`` is that way:

* calls run by the ``Dispatcher``'s policy (``def`` on its ``HandlerPool``,
  ``async def`` and ``@inline`` on the loop);
* ``handler_timeout`` is a ``Watchdog`` deadline (``dataserve.core.deadlines``),
  one sweeping timer per loop, not a timer per call;
* a ``def`` call past its deadline is abandoned (``HandlerPool.abandon``):
  its thread is left to finish on its own, the calls it had taken go back to
  the queue, and a replacement thread serves later calls, up to
  ``Limits.max_stuck_threads``; when every thread is stuck, an ERROR log line
  says so (and ``exhausted`` is true), once each time it happens.

``call`` (from a task) never raises for the handler: it returns a ``Settled``
saying how the call ended. ``start`` is the same without a task of the
caller's: ``done(settled)`` is called on the loop once the call ended (for a
``def`` handler, a future on the pool and a ``Watchdog`` callback; an
``@inline`` one is called at once; an ``async def`` one runs as a task whose
first step runs at once, ``dataserve.core.eager``), which is what a
connection that answers one request and closes needs. In both,
``Settled.outcome`` is the answer by the one policy
(``dataserve.core.outcome``): an exception's type, never its text, unless
it is a ``DataServeError`` raised on purpose; 504 past the deadline; 503 at
shutdown.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .deadlines import Deadline, Watchdogs, resolution_for
from .dispatch import Dispatcher, is_async, is_inline
from .eager import start_eagerly
from .limits import Limits
from .outcome import Outcome, handler_raised, shut_down, timed_out

__all__ = ["Guard", "Settled"]

logger = logging.getLogger("dataserve.handler")

Prepared = Callable[..., Awaitable[Any]]

_POOL, _ASYNC, _INLINE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Settled:
    """How a guarded call ended: a ``value``, an ``error``, ``timed_out`` or ``shut_down``.

    ``started`` (at shutdown) says whether the call had begun: one that had
    not is safe to send again.
    """

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    shut_down: bool = False
    started: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out and not self.shut_down

    def outcome(self, where: str, timeout: float, what: str = "the handler") -> Outcome:
        """The answer for a call that did not return (``where`` names the request,
        ``what`` the thing called: "the handler", "the callback", "command 'add'")."""
        if self.timed_out:
            return timed_out(timeout, what)
        if self.shut_down:
            return shut_down(self.started, what)
        assert self.error is not None, "a call that returned has no error outcome"
        return handler_raised(where, self.error, what)


class Guard:
    """Calls handlers by the dispatcher's policy, each under ``limits.handler_timeout``.

    ``name`` names the handler threads. With ``answer_shutdown``, a call
    cancelled by someone else than its deadline (the HTTP server's
    shutdown grace period ending) settles as ``shut_down``; without it the
    cancellation propagates (on raw TCP the connection is gone: its session
    answers for it).
    """

    def __init__(self, limits: Limits, name: str, *, answer_shutdown: bool = False) -> None:
        self.limits = limits
        self.name = name
        self.dispatcher = Dispatcher(limits.handler_threads, name, limits.max_stuck_threads)
        self.answer_shutdown = answer_shutdown
        self._watchdogs = Watchdogs(resolution_for(limits.handler_timeout))
        self._prepared: dict[int, tuple[Callable[..., Any], Prepared]] = {}
        self._kinds: dict[int, tuple[Callable[..., Any], int]] = {}

    @property
    def exhausted(self) -> bool:
        """Every handler thread is stuck past its deadline: no ``def`` call can run."""
        return self.dispatcher.pool.exhausted

    def prepare(self, fn: Callable[..., Any]) -> Prepared:
        """``fn`` made awaitable by its calling policy (decided once per function)."""
        found = self._prepared.get(id(fn))
        if found is not None and found[0] is fn:
            return found[1]
        prepared = self.dispatcher.prepare(fn)
        self._prepared[id(fn)] = (fn, prepared)  # fn kept: its id is not reused
        return prepared

    async def call(self, prepared: Prepared, *args: Any) -> Settled:
        """Await ``prepared(*args)`` under the deadline; how it ended, never an exception
        (but ``CancelledError`` from someone else, without ``answer_shutdown``)."""
        deadline = self._watchdogs.get().start(self.limits.handler_timeout)
        pending: asyncio.Future[Any] | None = None
        try:
            awaitable = prepared(*args)
            if isinstance(awaitable, asyncio.Future):
                pending = awaitable  # a def handler's call on the pool
            return Settled(value=await awaitable)
        except asyncio.CancelledError:
            pool = self.dispatcher.pool
            if deadline.owns():
                if pending is not None:
                    pool.abandon(pending)
                    self._check_exhausted()
                return Settled(timed_out=True)
            started = pending is None or pool.started(pending)
            if pending is not None:
                pending.cancel()  # not begun: it never will; begun: its result is dropped
            if not self.answer_shutdown:
                raise
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            return Settled(shut_down=True, started=started)
        except Exception as exc:  # a handler's own TimeoutError included: it raised
            return Settled(error=exc)  # the caller logs it, naming the request
        finally:
            deadline.stop()

    def start(
        self, fn: Callable[..., Any], args: tuple[Any, ...], done: Callable[[Settled], None]
    ) -> asyncio.Future[Any] | None:
        """Begin ``fn(*args)`` by its policy under the deadline; ``done(settled)`` is
        called once, on the loop, maybe before this returns.

        Returns ``None`` once ``done`` has been called, else what still runs:
        a ``def`` handler's call on the pool, or the task of an ``async def``
        one that suspended. Cancelling it (the connection is gone) drops the
        outcome: ``done`` is not called, and a pool call not begun never is.
        """
        kind = self._kind(fn)
        if kind == _INLINE:
            try:
                value = fn(*args)
            except Exception as exc:  # as call() does: the caller logs it
                done(Settled(error=exc))
            else:
                done(Settled(value=value))
            return None
        loop = asyncio.get_running_loop()
        if kind == _ASYNC:
            # The deadline applies from the first suspension (nothing can
            # interrupt a step that does not suspend): one that answers at
            # once costs no deadline, and no task step on Python 3.12+.
            holder: list[Deadline] = []
            task = start_eagerly(loop, self._settle(fn, args, done, holder))
            if task is not None:
                deadline = self._watchdogs.get(loop).start(self.limits.handler_timeout, task)
                holder.append(deadline)
                task.add_done_callback(lambda _: deadline.stop())  # however it ended
            return task
        pending = self.dispatcher.pool.submit(fn, *args)
        deadline = self._watchdogs.get(loop).call_later(
            self.limits.handler_timeout, self._expired, pending, done
        )
        pending.add_done_callback(functools.partial(_returned, deadline, done))
        return pending

    def _kind(self, fn: Callable[..., Any]) -> int:
        found = self._kinds.get(id(fn))
        if found is not None and found[0] is fn:
            return found[1]
        kind = _ASYNC if is_async(fn) else _INLINE if is_inline(fn) else _POOL
        self._kinds[id(fn)] = (fn, kind)  # fn kept: its id is not reused
        return kind

    async def _settle(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        done: Callable[[Settled], None],
        deadline: list[Deadline],
    ) -> None:
        """An ``async def`` handler's call, settled as ``call`` settles it."""
        try:
            settled = Settled(value=await fn(*args))
        except asyncio.CancelledError:
            if not deadline or not deadline[0].owns():
                raise  # cancelled by someone else: the connection is gone
            settled = Settled(timed_out=True)
        except Exception as exc:  # a handler's own TimeoutError included: it raised
            settled = Settled(error=exc)
        done(settled)

    def _expired(self, pending: asyncio.Future[Any], done: Callable[[Settled], None]) -> None:
        """A pool call's deadline passed (from the watchdog, on the loop)."""
        if pending.done():
            return  # it ended just now: its outcome is on its way
        self.dispatcher.pool.abandon(pending)  # cancels it: _returned drops it
        self._check_exhausted()
        done(Settled(timed_out=True))

    def _check_exhausted(self) -> None:
        pool = self.dispatcher.pool
        if pool.exhausted:
            logger.error(
                "every %s thread is stuck: %d calls ran past handler_timeout (%g s) and no "
                "replacement is left (max_stuck_threads %d); calls wait until one returns: "
                "restart the process",
                self.name,
                pool.stuck,
                self.limits.handler_timeout,
                self.limits.max_stuck_threads,
            )

    def close(self, wait: float | None = None) -> None:
        """Stop the handler threads once their queue is empty (see ``Dispatcher.close``)."""
        self.dispatcher.close(wait)


def _returned(
    deadline: Deadline, done: Callable[[Settled], None], pending: asyncio.Future[Any]
) -> None:
    """A pool call ended: its outcome, unless it was given up on (cancelled)."""
    deadline.stop()
    if pending.cancelled():
        return  # past its deadline (answered already) or its connection is gone
    error = pending.exception()
    done(Settled(error=error) if error is not None else Settled(value=pending.result()))
