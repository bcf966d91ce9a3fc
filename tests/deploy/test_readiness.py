"""dataserve.ops.readiness: starting, ready, draining; and draining on a signal."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from typing import Any

import pytest

from dataserve.ops.readiness import Readiness


def test_ready_once_every_hold_is_released() -> None:
    r = Readiness()
    assert r.ready and r.state == "ready"
    r.hold("startup")
    r.hold("native listener")
    assert not r.ready and r.state == "starting: native listener, startup"
    r.release("startup")
    r.release("never held")
    assert r.state == "starting: native listener"
    r.release("native listener")
    assert r.ready


def test_checks_say_why_not_at_every_probe() -> None:
    r = Readiness()
    stuck: list[str | None] = [None]
    r.check(lambda: stuck[0])
    r.check(lambda: None)
    assert r.ready
    stuck[0] = "every handler thread is stuck"
    assert not r.ready and r.state == "not ready: every handler thread is stuck"
    stuck[0] = None
    assert r.ready


def test_draining_is_for_good_and_wins_over_everything() -> None:
    r = Readiness()
    r.hold("startup")
    r.drain()
    assert r.draining and not r.ready and r.state == "draining"
    r.release("startup")
    assert r.state == "draining"


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread only"
)
def test_a_signal_drains_then_goes_to_the_handler_that_was_there() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: seen.append(sig))
    try:

        async def main() -> None:
            r = Readiness()
            undo = r.watch_signals()
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(100):  # the handler runs between bytecodes: soon
                    if seen:
                        break
                    await asyncio.sleep(0)
                assert r.draining and seen == [signal.SIGTERM]
            finally:
                undo()

        asyncio.run(main())
        assert callable(signal.getsignal(signal.SIGTERM))
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread only"
)
def test_with_a_delay_the_first_signal_is_passed_on_later() -> None:
    seen: list[int] = []
    arrived: list[asyncio.Future[None]] = []

    def passed_on(sig: int, frame: Any) -> None:
        seen.append(sig)
        for waiter in arrived:
            if not waiter.done():
                waiter.set_result(None)

    previous = signal.signal(signal.SIGINT, passed_on)
    try:

        async def main() -> Any:
            loop = asyncio.get_running_loop()
            arrived.append(loop.create_future())
            r = Readiness()
            undo = r.watch_signals(delay=0.05)
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(100):
                    if r.draining:
                        break
                    await asyncio.sleep(0)
                assert r.draining and seen == []  # not yet: the drain delay runs
                await asyncio.wait_for(arrived[0], 1)  # once the drain delay has run
                assert seen == [signal.SIGINT]
            finally:
                undo()

        asyncio.run(main())
    finally:
        signal.signal(signal.SIGINT, previous)
