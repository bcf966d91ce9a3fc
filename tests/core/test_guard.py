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


# --- start(): the same calls without a task of the caller's -------------------------------


def _started(guard: Guard, fn: Any, *args: Any) -> tuple[list[Settled], Any]:
    """``guard.start(fn, args, done)``: what ``done`` got so far, and what still runs."""
    got: list[Settled] = []
    return got, guard.start(fn, args, got.append)


def test_start_calls_an_inline_handler_at_once() -> None:
    from dataserve.core.dispatch import inline

    @inline
    def double(x: int) -> int:
        if x < 0:
            raise KeyError(x)
        return 2 * x

    async def main() -> None:
        guard = Guard(Limits(handler_timeout=5), "test")
        try:
            got, pending = _started(guard, double, 21)
            assert pending is None and got == [Settled(value=42)]
            got, pending = _started(guard, double, -1)
            assert pending is None and isinstance(got[0].error, KeyError)
        finally:
            guard.close()

    run(main())


def test_start_answers_an_async_handler_that_does_not_wait_before_returning() -> None:
    async def now(x: int) -> int:
        return x + 1

    async def later(x: int) -> int:
        await asyncio.sleep(0)  # sleep-ok: the handler suspends once
        return x + 2

    async def main() -> None:
        guard = Guard(Limits(handler_timeout=5), "test")
        try:
            got, pending = _started(guard, now, 1)
            if pending is not None:  # a task on Python 3.11, already done
                await pending
            assert got == [Settled(value=2)]
            got, pending = _started(guard, later, 1)
            assert got == [] and pending is not None
            await pending
            assert got == [Settled(value=3)]
        finally:
            guard.close()

    run(main())


def test_start_runs_a_def_handler_on_the_pool_and_settles_on_the_loop() -> None:
    def where(x: int) -> str:
        if x < 0:
            raise ValueError("no")
        return threading.current_thread().name

    async def main() -> None:
        guard = Guard(Limits(handler_timeout=5), "pool-test")
        loop = asyncio.get_running_loop()
        try:
            done: asyncio.Future[Settled] = loop.create_future()
            pending = guard.start(where, (1,), done.set_result)
            assert not done.done() and isinstance(pending, asyncio.Future)
            assert (await done).value.startswith("pool-test")
            done = loop.create_future()
            guard.start(where, (-1,), done.set_result)
            assert isinstance((await done).error, ValueError)
        finally:
            guard.close()

    run(main())


def test_start_gives_up_on_a_def_handler_past_its_deadline_and_replaces_its_thread() -> None:
    release = threading.Event()

    def handler(name: str) -> str:
        if name == "hang":
            release.wait(30)
        return name

    async def main() -> None:
        guard = Guard(Limits(handler_timeout=0.2, handler_threads=1), "test")
        try:
            timed_out = asyncio.get_running_loop().create_future()
            guard.start(handler, ("hang",), timed_out.set_result)
            assert await timed_out == Settled(timed_out=True)
            assert guard.dispatcher.pool.stuck == 1
            after = asyncio.get_running_loop().create_future()
            guard.start(handler, ("after",), after.set_result)
            assert await after == Settled(value="after")  # a new thread ran it
        finally:
            release.set()
            guard.close()

    run(main())


def test_start_drops_the_outcome_of_a_call_cancelled_by_its_caller() -> None:
    entered, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def handler(name: str) -> str:
        ran.append(name)
        if name == "first":
            entered.set()
            release.wait(30)
        return name

    async def main() -> list[Settled]:
        guard = Guard(Limits(handler_timeout=30, handler_threads=1), "test")
        got: list[Settled] = []
        try:
            first = guard.start(handler, ("first",), got.append)
            queued = guard.start(handler, ("queued",), got.append)
            assert first is not None and queued is not None
            await asyncio.to_thread(entered.wait, 10)
            first.cancel()  # running: it runs on, unheard
            queued.cancel()  # not begun: it never will be
            release.set()
            last = asyncio.get_running_loop().create_future()
            guard.start(handler, ("last",), last.set_result)
            assert await last == Settled(value="last")
            return got
        finally:
            release.set()
            guard.close()

    assert run(main()) == []
    assert ran == ["first", "last"]


def test_start_puts_an_async_handler_that_suspends_under_the_deadline() -> None:
    async def main() -> tuple[Settled, list[Settled]]:
        guard = Guard(Limits(handler_timeout=0.2), "test")
        never = asyncio.Event()

        async def hang() -> None:
            await never.wait()

        try:
            loop = asyncio.get_running_loop()
            timed_out: asyncio.Future[Settled] = loop.create_future()
            task = guard.start(hang, (), timed_out.set_result)
            assert task is not None and not timed_out.done()
            dropped: list[Settled] = []
            other = guard.start(hang, (), dropped.append)
            assert other is not None
            other.cancel()  # the caller's cancellation (a connection gone): no outcome
            with pytest.raises(asyncio.CancelledError):
                await other
            return await timed_out, dropped
        finally:
            guard.close()

    settled, dropped = run(main())
    assert settled == Settled(timed_out=True) and dropped == []
