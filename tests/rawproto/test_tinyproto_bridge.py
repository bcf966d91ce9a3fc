"""rawproto.tinyproto.bridge: how a connection's hook thread and the event loop talk."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dataserve.core.errors import DataServeError
from rawproto.tinyproto.bridge import (
    CLOSED,
    DRAIN,
    READY,
    WAKE,
    MessageRefused,
    TinyProtoError,
    Waiter,
    call_from_thread,
    close_from_thread,
)

from .lines import LineService
from .mock_transport import connect


def test_the_markers_are_distinct_and_the_errors_related() -> None:
    assert len({READY, CLOSED, WAKE, DRAIN}) == 4
    assert issubclass(TinyProtoError, DataServeError)
    assert not issubclass(MessageRefused, DataServeError)


def test_a_waiter_wakes_its_thread_with_the_result() -> None:
    waiter = Waiter()
    assert not waiter.done()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait(10)))
    thread.start()
    waiter.set_result(None)
    thread.join(10)
    assert result == [True] and waiter.done()
    waiter.set_result(None)  # once done, later calls change nothing
    waiter.set_exception(RuntimeError("late"))
    assert waiter.done()  # still the first outcome: no exception was kept
    assert waiter._exc is None


def test_a_waiter_raises_the_loops_exception_on_its_thread() -> None:
    waiter = Waiter()
    waiter.set_exception(MessageRefused("the peer refused it"))
    with pytest.raises(MessageRefused, match="refused"):
        waiter.wait(1)


def test_a_waiter_gives_up_after_its_timeout() -> None:
    waiter = Waiter()
    assert waiter.wait(0) is False
    assert waiter.wait(-5) is False  # a negative timeout is no wait at all
    assert not waiter.done()


def test_call_from_thread_runs_on_the_loop_and_not_on_a_closed_one() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        ran: asyncio.Future[str] = loop.create_future()
        threading.Thread(
            target=call_from_thread,
            args=(loop, lambda: ran.set_result(threading.current_thread().name)),
        ).start()
        return await asyncio.wait_for(ran, 10)

    assert asyncio.run(main()) == threading.current_thread().name
    closed = asyncio.new_event_loop()
    closed.close()
    call_from_thread(closed, lambda: None)  # the loop is gone: nothing, no error


def test_close_from_thread_closes_and_waits_until_closed() -> None:
    async def main() -> bool:
        conn, t = connect(LineService().session)
        await asyncio.to_thread(close_from_thread, conn)
        return t.closed and conn.closed_future.done()

    assert asyncio.run(main())
