"""Coarse deadlines: one sweeping timer per event loop instead of a timer each.

``loop.call_later`` and ``asyncio.timeout`` arm a loop timer per use (a
``TimerHandle`` and a heap entry, about 3 µs on uvloop with the cancel), a
large share of a small request's own time when every request needs one. A
``Watchdog`` keeps the deadlines of one loop in a set instead: one timer
ticks every ``resolution`` seconds while any is pending and expires those
past their time, so a deadline fires at most ``resolution`` late and costs a
set entry while it runs. Nothing ticks while no deadline is pending.

A deadline either cancels a task (``start``: the task then asks ``owns()``
whether the ``CancelledError`` it caught is the deadline's) or calls a
function (``call_later``: for work that is not a task, such as a ``def``
handler on a thread pool, whose answer is given up on).

Used for every per-request deadline: the HTTP endpoint's body and handler
deadlines (``dataserve.http.app``), the HTTP protocol's header deadline
(``dataserve.http.protocol``), the raw TCP services' handler deadlines
(``rawproto.native.service``), and through ``dataserve.core.guard`` the
handler deadlines of the callback API, tcpy and pyts (with the callback's
body deadline and tcpy's ``recv()``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Deadline", "Watchdog", "Watchdogs", "resolution_for"]

logger = logging.getLogger("dataserve.deadlines")


def resolution_for(*timeouts: float) -> float:
    """How late a deadline may fire: a quarter of the shortest timeout, 0.25 s at most
    (and with no timeout given)."""
    return min((0.25, *(t / 4 for t in timeouts)))


class Deadline:
    """One deadline in a ``Watchdog``: ``restart`` moves it, ``stop`` ends it.

    ``phase`` is free for the owner to say what the deadline covers now (the
    HTTP endpoint: the body, then the handler), so the timeout's answer can
    depend on it.
    """

    __slots__ = ("args", "callback", "expired", "handled", "phase", "task", "watchdog", "when")

    def __init__(
        self,
        watchdog: Watchdog,
        when: float,
        task: asyncio.Task[Any] | None,
        callback: Callable[..., object] | None = None,
        args: tuple[Any, ...] = (),
        phase: str = "",
    ) -> None:
        self.watchdog = watchdog
        self.when = when
        self.task = task
        self.callback = callback
        self.args = args
        self.phase = phase
        self.expired = False
        self.handled = False

    def restart(self, delay: float, phase: str | None = None) -> None:
        """The deadline is now ``delay`` seconds from now (and covers ``phase``)."""
        self.when = self.watchdog.loop.time() + delay
        if phase is not None:
            self.phase = phase

    def owns(self) -> bool:
        """After a ``CancelledError``: True if this deadline sent it (and it is taken back).

        The cancellation is taken back (``Task.uncancel``), so the task can
        answer the timeout and go on; False means someone else cancelled the
        task (a shutdown), and the error must propagate.
        """
        if not self.expired or self.handled:
            return False
        self.handled = True
        uncancel = getattr(self.task, "uncancel", None)  # Python 3.11+
        return uncancel is None or uncancel() == 0

    def stop(self) -> None:
        """The work finished: the deadline no longer applies."""
        self.watchdog.pending.discard(self)
        if self.expired and not self.handled and self.task is not None:
            # Expired, but the cancellation was swallowed on its way: take it
            # back so it cannot surface at a later, unrelated await.
            self.handled = True
            uncancel = getattr(self.task, "uncancel", None)
            if uncancel is not None:
                uncancel()

    def _expire(self) -> None:
        self.expired = True
        if self.task is not None:
            self.task.cancel()
        elif self.callback is not None:
            self.callback(*self.args)


class Watchdog:
    """The deadlines of one event loop, swept by one timer every ``resolution`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float) -> None:
        if not resolution > 0:
            raise ValueError(f"a watchdog's resolution must be positive, not {resolution}")
        self.loop = loop
        self.resolution = resolution
        self.pending: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(
        self, delay: float, task: asyncio.Task[Any] | None = None, *, phase: str = ""
    ) -> Deadline:
        """A deadline ``delay`` seconds from now that cancels ``task`` (default: the
        current), covering ``phase``."""
        if task is None:
            task = asyncio.current_task(self.loop)
            if task is None:
                raise RuntimeError("Watchdog.start() outside a task: pass the task")
        return self._add(Deadline(self, self.loop.time() + delay, task, phase=phase))

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Deadline:
        """A deadline ``delay`` seconds from now that calls ``callback(*args)`` (at most
        ``resolution`` late); ``stop()`` it when the work it guards has finished."""
        return self._add(Deadline(self, self.loop.time() + delay, None, callback, args))

    def _add(self, deadline: Deadline) -> Deadline:
        self.pending.add(deadline)
        if self._timer is None:
            self._timer = self.loop.call_later(self.resolution, self._tick)
        return deadline

    def _tick(self) -> None:
        now = self.loop.time()
        for deadline in [d for d in self.pending if d.when <= now]:
            self.pending.discard(deadline)
            try:
                deadline._expire()
            except Exception:  # one failing callback must not stop the sweep
                logger.exception("a deadline's callback raised")
        self._timer = self.loop.call_later(self.resolution, self._tick) if self.pending else None


class Watchdogs:
    """One ``Watchdog`` per event loop for one owner (a service, an endpoint).

    ``get()`` returns the running loop's, made on first use; a loop that is
    gone takes its watchdog with it.
    """

    def __init__(self, resolution: float) -> None:
        self.resolution = resolution
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = (
            weakref.WeakKeyDictionary()
        )
        self._last: Watchdog | None = None

    def get(self, loop: asyncio.AbstractEventLoop | None = None) -> Watchdog:
        if loop is None:
            loop = asyncio.get_running_loop()
        watchdog = self._last
        if watchdog is None or watchdog.loop is not loop:
            watchdog = self._by_loop.get(loop)
            if watchdog is None:
                watchdog = self._by_loop[loop] = Watchdog(loop, self.resolution)
            self._last = watchdog
        return watchdog
