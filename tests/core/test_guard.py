"""dataserve.core.guard: a handler call under the deadline, settled by the one policy."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from dataserve.core.errors import BadRequest
from dataserve.core.guard import Guard, Settled
from dataserve.core.limits import Limits


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_settled_outcomes_follow_the_policy() -> None:
    assert Settled(value=1).ok
    raised = Settled(error=ValueError("secret text")).outcome("/x", 5)
    assert (raised.status, raised.message) == (
        500,
        "the handler raised ValueError for /x (see the server log)",
    )
    on_purpose = Settled(error=BadRequest("say why")).outcome("/x", 5, "the callback")
    assert (on_purpose.status, on_purpose.message) == (400, "say why")
    late = Settled(timed_out=True).outcome("/x", 2.5, "command 'add'")
    assert (late.status, late.message) == (504, "command 'add' did not answer within 2.5 s")
    cut = Settled(shut_down=True, started=False).outcome("/x", 5)
    assert (cut.status, cut.retry) == (503, True)
    assert cut.message == "the server shut down before the handler ran; send it again"


@pytest.mark.parametrize("kind", ["def", "async"])
def test_values_and_exceptions_are_settled_never_raised(kind: str) -> None:
    def plain(x: int) -> int:
        if x < 0:
            raise KeyError(x)
        return 2 * x

    async def coroutine(x: int) -> int:
        return plain(x)

    async def main() -> tuple[Settled, Settled]:
        guard = Guard(Limits(handler_timeout=5), "test")
        call = guard.prepare(plain if kind == "def" else coroutine)
        try:
            return await guard.call(call, 21), await guard.call(call, -1)
        finally:
            guard.close()

    good, bad = run(main())
    assert good == Settled(value=42)
    assert isinstance(bad.error, KeyError) and not bad.ok


def test_a_def_call_past_its_deadline_is_abandoned_and_its_thread_replaced() -> None:
    release = threading.Event()

    def handler(name: str) -> str:
        if name == "hang":
            release.wait(30)
        return name

    async def main() -> tuple[Settled, Settled, int, bool]:
        guard = Guard(Limits(handler_timeout=0.2, handler_threads=1), "test")
        call = guard.prepare(handler)
        try:
            hung = await guard.call(call, "hang")
            after = await guard.call(call, "after")  # a new thread runs it
            return hung, after, guard.dispatcher.pool.stuck, guard.exhausted
        finally:
            release.set()
            guard.close()

    hung, after, stuck, exhausted = run(main())
    assert hung.timed_out and after == Settled(value="after")
    assert stuck == 1 and not exhausted


def test_a_cancellation_not_the_deadlines_propagates_or_is_settled_as_shutdown() -> None:
    async def cancelled(answer_shutdown: bool) -> Any:
        entered, release = threading.Event(), threading.Event()

        def handler() -> None:
            entered.set()
            release.wait(30)

        guard = Guard(Limits(handler_timeout=30), "test", answer_shutdown=answer_shutdown)
        task = asyncio.ensure_future(guard.call(guard.prepare(handler)))
        await asyncio.to_thread(entered.wait, 10)
        task.cancel()  # as a server's shutdown, or a lost connection, does
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"
        finally:
            release.set()
            guard.close()

    assert run(cancelled(False)) == "cancelled"
    assert run(cancelled(True)) == Settled(shut_down=True, started=True)
