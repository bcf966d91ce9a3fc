"""rawproto.engine.loop: the core's loops under rawproto's names."""

from __future__ import annotations

import asyncio
import threading

from dataserve.core import running
from rawproto.engine import loop


def test_the_names_are_the_cores_own_objects() -> None:
    assert loop.LoopThread is running.LoopThread
    assert loop.run is running.run
    assert loop.new_event_loop is running.new_event_loop
    assert sorted(loop.__all__) == ["LoopThread", "new_event_loop", "run"]


def test_run_runs_a_coroutine_on_a_loop_of_its_own() -> None:
    outer: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        outer.append(asyncio.get_running_loop())
        return 42

    assert loop.run(main()) == 42
    assert outer[0].is_closed()


def test_new_event_loop_makes_a_fresh_loop() -> None:
    a, b = loop.new_event_loop(), loop.new_event_loop()
    try:
        assert a is not b and not a.is_running()
        assert a.run_until_complete(asyncio.sleep(0, result="ok")) == "ok"
    finally:
        a.close()
        b.close()


def test_the_shared_loop_thread_runs_coroutines_on_another_thread() -> None:
    shared = loop.LoopThread.shared()
    assert loop.LoopThread.shared() is shared

    async def where() -> int:
        return threading.get_ident()

    assert shared.run(where()) != threading.get_ident()
