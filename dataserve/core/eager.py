"""Tasks whose first step runs at once, as Python 3.12's eager tasks do.

Most ``async def`` handlers answer without awaiting anything. As an ordinary
task such a handler starts on the next turn of the event loop, and its
answer goes out a turn later still; as an eager task its first step runs
right away, inside the callback that received the request, so a handler
that does not suspend is answered in the same turn.

The task exists from the start, and is the current task during that first
step, so a handler sees what it would see in any task (``current_task()``,
``asyncio.timeout``, ``TaskGroup``), and cancellation, deadlines and
shutdown treat the task as any other: a handler that suspends simply goes
on in it.

Python 3.12 and later do this themselves (``eager_start=True``). On 3.11
the task is made with its coroutine wrapped in ``_FirstStep``, whose first
step is run here under ``_enter_task``; the step the task schedules then
only hands over what that first step produced (the future it waits for,
its result or its exception). Python 3.10 starts the task as usual.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start_eagerly"]


def start_eagerly(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]
) -> asyncio.Task[Any] | None:
    """Run ``coro`` as a task whose first step runs now.

    Returns ``None`` when the coroutine returned in that first step (there
    is nothing left to wait for), else the task (still running, or failed:
    its exception is the caller's to see, as with any task).
    """
    if sys.version_info >= (3, 12):
        task = asyncio.Task(coro, loop=loop, eager_start=True)
        if task.done() and not task.cancelled() and task.exception() is None:
            return None
        return task
    if sys.version_info < (3, 11):  # pragma: no cover - no context= for tasks
        return loop.create_task(coro)
    if asyncio.current_task(loop) is not None:
        return loop.create_task(coro)  # called from inside a task: no step can run now
    context = contextvars.copy_context()
    step = _FirstStep(coro)
    task = loop.create_task(step, context=context)
    asyncio.tasks._enter_task(loop, task)
    try:
        context.run(step.run)
    finally:
        asyncio.tasks._leave_task(loop, task)
    return None if step.returned else task


_UNSTARTED = 0  # no eager step ran: the task drives the coroutine from the start
_SUSPENDED = 1  # the eager step yielded ``_value`` (what the task must wait for)
_RETURNED = 2  # the eager step returned ``_value``
_RAISED = 3  # the eager step raised ``_value``
_HANDED_OVER = 4  # the task drives the coroutine


class _FirstStep(Coroutine[Any, Any, Any]):
    """A coroutine whose first step already ran; the task's first step takes its outcome."""

    __slots__ = ("_coro", "_state", "_value")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._state = _UNSTARTED
        self._value: Any = None

    @property
    def returned(self) -> bool:
        return self._state == _RETURNED

    def run(self) -> None:
        """The first step, run by ``start_eagerly`` with the task as the current task."""
        try:
            self._value = self._coro.send(None)
        except StopIteration as stop:
            self._state, self._value = _RETURNED, stop.value
        except BaseException as exc:  # surfaces from the task's own step
            self._state, self._value = _RAISED, exc
        else:
            self._state = _SUSPENDED

    def _hand_over(self) -> Any:
        state, value = self._state, self._value
        self._state, self._value = _HANDED_OVER, None
        if state == _SUSPENDED:
            return value  # as if the coroutine had just yielded it to the task
        if state == _RETURNED:
            raise StopIteration(value)
        raise value

    def send(self, value: Any) -> Any:
        if self._state == _HANDED_OVER or self._state == _UNSTARTED:
            self._state = _HANDED_OVER
            return self._coro.send(value)
        return self._hand_over()

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if self._state == _RETURNED or self._state == _RAISED:
            return self._hand_over()  # finished already: a late cancellation changes nothing
        # Cancelled before the task's first step: it lands where the coroutine waits.
        self._state, self._value = _HANDED_OVER, None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - the old signature

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("_FirstStep is driven by its task, never awaited")
