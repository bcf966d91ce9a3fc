"""Readiness: starting, ready, draining.

A server is *live* (``/health`` answers 200) as long as it answers at all;
it is *ready* (``/ready`` answers 200) when nothing holds it back: it has
finished starting (every ``hold`` was released) and has not begun to drain.
On SIGTERM or SIGINT it drains: ``/ready`` answers 503 at once, so a load
balancer or orchestrator that probes it stops sending new work, while the
server finishes what it has (and, with a drain delay, keeps accepting for
that long before it stops listening).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..core.running import SIGNALS, catch_signals

__all__ = ["Readiness"]


class Readiness:
    """Whether a server should be sent new work; shared by its listeners.

    ``hold(reason)`` keeps it *starting* until ``release(reason)``; a raw TCP
    listener holds it until it listens, a handler may hold it while it
    warms up. ``drain()`` makes it *draining* for good.
    """

    def __init__(self) -> None:
        self._holds: set[str] = set()
        self._draining = False
        self._checks: list[Callable[[], str | None]] = []

    def hold(self, reason: str) -> None:
        """Not ready until ``release(reason)``."""
        self._holds.add(reason)

    def release(self, reason: str) -> None:
        self._holds.discard(reason)

    def check(self, why_not: Callable[[], str | None]) -> None:
        """Not ready while ``why_not()`` says why (a string); ``None``: fine.

        Asked at every probe, so it must be cheap: the data server's says
        that every handler thread is stuck past its deadline.
        """
        self._checks.append(why_not)

    def _failing(self) -> list[str]:
        return [why for why in (check() for check in self._checks) if why]

    def drain(self) -> None:
        """Not ready any more: the server is stopping."""
        self._draining = True

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def ready(self) -> bool:
        return not self._draining and not self._holds and not self._failing()

    @property
    def state(self) -> str:
        """``'ready'``, ``'starting: <reasons>'``, ``'draining'`` or
        ``'not ready: <reasons>'``."""
        if self._draining:
            return "draining"
        if self._holds:
            return "starting: " + ", ".join(sorted(self._holds))
        failing = self._failing()
        if failing:
            return "not ready: " + "; ".join(failing)
        return "ready"

    def watch_signals(self, delay: float = 0.0) -> Callable[[], None]:
        """Drain on SIGTERM/SIGINT, then pass the signal on; returns an undo.

        The runner (``dataserve.core.running.serve_until_signalled``, or
        uvicorn itself in a worker process) has installed its handlers by
        the time the app starts; this wraps them, so the server still shuts
        down as it does, only ``delay`` seconds later on the first signal (a
        second signal goes through at once). Only the main thread can set signal
        handlers: elsewhere (a background server) this does nothing.
        """
        loop = asyncio.get_running_loop()
        # The handlers to pass each signal on to: SIG_DFL / SIG_IGN are nobody.
        previous = {int(sig): signal.getsignal(sig) for sig in SIGNALS}
        passed_on: dict[int, Callable[..., Any]] = {
            sig: old for sig, old in previous.items() if callable(old)
        }

        def on_signal(sig: int, frame: FrameType | None) -> None:
            first = not self._draining
            self.drain()
            if first and delay > 0:
                # call_soon_threadsafe is the loop's signal-safe entry.
                loop.call_soon_threadsafe(loop.call_later, delay, passed_on[sig], sig, None)
            else:
                passed_on[sig](sig, frame)

        # The undo leaves a handler set after ours (the server may have restored its own).
        return catch_signals(on_signal, passed_on, keep_later=True)
