"""dataserve.core.eager: tasks whose first step runs at once.

Each test starts the coroutine from a plain loop callback, as a transport's
``data_received`` does, and looks at what ran before the callback returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from dataserve.core.eager import start_eagerly


def from_a_callback(make: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Call ``start_eagerly`` from a loop callback; return its result and the log."""
    log: list[str] = []

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        started: asyncio.Future[Any] = loop.create_future()

        def callback() -> None:
            result = start_eagerly(loop, make()(log))
            log.append("callback returned")
            started.set_result(result)

        loop.call_soon(callback)
        task = await started
        if task is not None:
            try:
                log.append(f"task gave {await task!r}")
            except Exception as exc:
                log.append(f"task raised {exc!r}")
        return task

    return asyncio.run(main()), log


def test_a_coroutine_that_does_not_suspend_is_done_before_the_callback_returns() -> None:
    def make() -> Any:
        async def handler(log: list[str]) -> str:
            log.append("handled")
            return "answer"

        return handler

    task, log = from_a_callback(make)
    assert task is None
    assert log == ["handled", "callback returned"]


def test_a_coroutine_that_suspends_runs_its_first_step_now_and_goes_on_in_its_task() -> None:
    def make() -> Any:
        async def handler(log: list[str]) -> str:
            log.append("first step")
            await asyncio.sleep(0)
            log.append("second step")
            return "answer"

        return handler

    task, log = from_a_callback(make)
    assert isinstance(task, asyncio.Task) and task.done()
    assert log == ["first step", "callback returned", "second step", "task gave 'answer'"]


def test_an_exception_in_the_first_step_is_the_tasks() -> None:
    def make() -> Any:
        async def handler(log: list[str]) -> str:
            log.append("about to fail")
            raise ValueError("first step failed")

        return handler

    task, log = from_a_callback(make)
    assert isinstance(task, asyncio.Task)
    assert log == [
        "about to fail",
        "callback returned",
        "task raised ValueError('first step failed')",
    ]


def test_the_first_step_runs_inside_its_task() -> None:
    def make() -> Any:
        async def handler(log: list[str]) -> None:
            task = asyncio.current_task()
            log.append("in a task" if task is not None else "no task")
            await asyncio.sleep(0)
            log.append("same task" if asyncio.current_task() is task else "another task")

        return handler

    _, log = from_a_callback(make)
    assert log[:2] == ["in a task", "callback returned"]
    assert log[2] == "same task"


def test_a_task_cancelled_after_its_first_step_is_cancelled() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        log: list[str] = []
        made: asyncio.Future[Any] = loop.create_future()

        async def handler() -> None:
            log.append("started")
            await asyncio.Event().wait()

        loop.call_soon(lambda: made.set_result(start_eagerly(loop, handler())))
        task = await made
        assert task is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return log

    assert asyncio.run(main()) == ["started"]
