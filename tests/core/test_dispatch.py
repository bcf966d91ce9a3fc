from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import pytest

from dataserve.core.dispatch import Dispatcher, HandlerPool, inline
from dataserve.core.handler import HTTPDataHandler, make_caller
from dataserve.core.routing import Router


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_async_handlers_run_on_the_loop_and_def_handlers_off_it() -> None:
    seen: dict[str, int | None] = {}

    async def main() -> None:
        loop_thread = threading.get_ident()
        d = Dispatcher()

        async def a(x: int) -> int:
            seen["async"] = threading.get_ident()
            return x + 1

        def s(x: int) -> int:
            seen["def"] = threading.get_ident()
            return x + 2

        @inline
        def i(x: int) -> int:
            seen["inline"] = threading.get_ident()
            return x + 3

        assert d.prepare(a) is a  # no wrapper at all on the async path
        assert await d.prepare(a)(1) == 2
        assert await d.prepare(s)(1) == 3
        assert await d.prepare(i)(1) == 4
        assert seen["async"] == loop_thread
        assert seen["inline"] == loop_thread
        assert seen["def"] != loop_thread
        d.close(wait=5)

    run(main())


def test_def_handlers_are_serialised_by_default() -> None:
    active = 0
    most = 0
    lock = threading.Lock()

    def handler(i: int) -> int:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        with lock:
            active -= 1
        return i

    async def main() -> list[int]:
        d = Dispatcher()
        call = d.prepare(handler)
        results = await asyncio.gather(*(call(i) for i in range(500)))
        d.close(wait=5)
        return list(results)

    assert run(main()) == list(range(500))
    assert most == 1


def test_threads_n_lets_n_run_at_once() -> None:
    n = 4
    barrier = threading.Barrier(n, timeout=10)

    def handler(i: int) -> int:
        barrier.wait()  # only returns once n calls run at the same time
        return i

    async def main() -> list[int]:
        d = Dispatcher(threads=n)
        call = d.prepare(handler)
        results = await asyncio.gather(*(call(i) for i in range(n)))
        d.close(wait=5)
        return list(results)

    assert run(main()) == list(range(n))


def test_calls_arriving_while_threads_are_idle_still_run_at_once() -> None:
    # Threads that went idle after earlier calls take one queued call each;
    # the calls beyond them must get threads of their own, or a blocking call
    # would hold the others up.
    n = 4

    async def main() -> None:
        d = Dispatcher(threads=n)
        call = d.prepare(lambda i, barrier: (barrier and barrier.wait(), i)[1])
        for idle in range(1, n):
            await asyncio.gather(*(call(i, None) for i in range(idle)))  # leaves idle threads
            barrier = threading.Barrier(n, timeout=10)
            assert await asyncio.gather(*(call(i, barrier) for i in range(n))) == list(range(n))
        d.close(wait=5)

    run(main())


def test_a_blocking_handler_does_not_block_the_loop() -> None:
    release = threading.Event()

    def blocking() -> str:
        release.wait(10)
        return "done"

    async def main() -> str:
        d = Dispatcher()
        fut = d.prepare(blocking)()
        # The loop still runs other work while the handler blocks.
        await asyncio.sleep(0)
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 10 and not fut.done()  # type: ignore[attr-defined]
        release.set()
        result = await fut
        d.close(wait=5)
        return str(result)

    assert run(main()) == "done"


def test_exceptions_reach_the_caller() -> None:
    def boom() -> None:
        raise ValueError("bad")

    async def main() -> None:
        d = Dispatcher()
        with pytest.raises(ValueError, match="bad"):
            await d.prepare(boom)()
        d.close(wait=5)

    run(main())


def test_closed_pool_refuses_new_work() -> None:
    async def main() -> None:
        pool = HandlerPool()
        pool.close()
        with pytest.raises(RuntimeError, match="closed"):
            pool.submit(print)

    run(main())


def test_make_caller_for_each_kind_of_handler() -> None:
    class Handler(HTTPDataHandler):
        def handle_request(self, resource: str, payload: Any) -> Any:
            return [resource, payload]

    router: Router[Any] = Router()

    @router.route("/sum")
    async def total(payload: list[int]) -> int:
        return sum(payload)

    @router.route("/echo/{name}")
    def echo(payload: Any, name: str) -> Any:
        return {name: payload}

    async def main() -> None:
        d = Dispatcher()
        assert await make_caller(Handler, d)("/r", 1) == ["/r", 1]
        assert await make_caller(Handler(), d)("/r", 2) == ["/r", 2]
        assert await make_caller(lambda r, p: p * 2, d)("/r", 3) == 6
        call = make_caller(router, d)
        assert await call("/sum", [1, 2]) == 3
        assert await call("/echo/a", 5) == {"a": 5}
        assert await call("/missing", 5) is None
        d.close(wait=5)

    run(main())
    with pytest.raises(TypeError, match="not int"):
        make_caller(5, Dispatcher())


def test_a_finished_call_leaves_nothing_of_its_payload_in_the_pool() -> None:
    """A request's payload must not stay alive in the handler thread until the next one
    (with 512 MiB bodies that was a third copy of the body in the server's RSS)."""

    class Payload:
        pass

    async def main() -> None:
        d = Dispatcher()
        payload = Payload()
        ref = weakref.ref(payload)
        assert await d.prepare(lambda p: p)(payload) is payload
        del payload
        # The next call runs on the same handler thread, after the first one is done.
        assert await d.prepare(lambda: ref() is None)() is True
        d.close(wait=5)

    run(main())
