"""dataserve.core.exchange: one request from body to answer, by the handler's policy.

``answer`` (from a task the transport runs) and ``start`` (a ``done``
callback, no task) on the same handlers: ``def`` (on the pool), ``async
def`` and ``@inline`` (on the loop), and a ``Router``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from dataserve.core.dispatch import Dispatcher, inline
from dataserve.core.errors import BadRequest, DecodeError, EncodeError
from dataserve.core.exchange import OFFLOAD_FROM, Exchange
from dataserve.core.outcome import Outcome
from dataserve.core.routing import Router


def decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None


def encode(value: Any) -> tuple[str, bytes]:
    try:
        return "application/json", orjson.dumps(value)
    except TypeError as exc:
        raise EncodeError(str(exc)) from None


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    d = Dispatcher(threads=2, name="exchange-test")
    yield d
    d.close(wait=5)


def answer(exchange: Exchange, resource: str, body: Any, dec: Any = decode) -> Outcome:
    async def main() -> Outcome:
        return await exchange.answer(resource, body, dec, encode)

    return asyncio.run(main())


def started(exchange: Exchange, resource: str, body: Any, dec: Any = decode) -> list[Outcome]:
    """``start`` it and wait for ``done``; the outcomes ``done`` got."""
    got: list[Outcome] = []

    async def main() -> None:
        finished = asyncio.Event()

        def done(outcome: Outcome) -> None:
            got.append(outcome)
            finished.set()

        pending = exchange.start(resource, body, dec, encode, done)
        await asyncio.wait_for(finished.wait(), 10)
        if pending is not None:
            await pending

    asyncio.run(main())
    return got


def where(resource: str, payload: Any) -> Any:
    return {"thread": threading.current_thread().name, "payload": payload, "resource": resource}


async def where_async(resource: str, payload: Any) -> Any:
    return {"thread": threading.current_thread().name, "payload": payload}


@pytest.mark.parametrize("way", [answer, started])
def test_a_def_handler_runs_on_the_pool(dispatcher: Dispatcher, way: Any) -> None:
    out = way(Exchange(where, dispatcher, 10), "/r", b"[1,2]")
    outcome = out if isinstance(out, Outcome) else out[0]
    assert outcome.status == 200 and outcome.media == "application/json"
    body = orjson.loads(outcome.body)
    assert body["payload"] == [1, 2] and body["resource"] == "/r"
    assert body["thread"].startswith("exchange-test")


@pytest.mark.parametrize("way", [answer, started])
def test_async_and_inline_handlers_run_on_the_loop(dispatcher: Dispatcher, way: Any) -> None:
    main = threading.current_thread().name

    @inline
    def inlined(resource: str, payload: Any) -> Any:
        return threading.current_thread().name

    for handler in (where_async, inlined):
        out = way(Exchange(handler, dispatcher, 10), "/r", b'"x"')
        outcome = out if isinstance(out, Outcome) else out[0]
        value = orjson.loads(outcome.body)
        assert (value["thread"] if isinstance(value, dict) else value) == main


def test_start_of_an_async_handler_that_does_not_suspend_is_done_before_it_returns(
    dispatcher: Dispatcher,
) -> None:
    exchange = Exchange(where_async, dispatcher, 10)
    got: list[Outcome] = []

    async def main() -> Any:
        # From a loop callback, as a transport's data_received calls it (not a task).
        loop = asyncio.get_running_loop()
        returned: asyncio.Future[Any] = loop.create_future()
        loop.call_soon(
            lambda: returned.set_result(
                (exchange.start("/r", b"1", decode, encode, got.append), list(got))
            )
        )
        return await returned

    pending, seen_by_then = asyncio.run(main())
    assert pending is None
    assert [o.status for o in seen_by_then] == [200]


def test_a_big_body_for_an_async_handler_is_decoded_off_the_loop(dispatcher: Dispatcher) -> None:
    threads: list[str] = []

    def tracking_decode(body: bytes) -> Any:
        threads.append(threading.current_thread().name)
        return decode(body)

    main = threading.current_thread().name
    exchange = Exchange(where_async, dispatcher, 10)
    answer(exchange, "/r", b"1", tracking_decode)
    answer(exchange, "/r", b'"' + b"x" * OFFLOAD_FROM + b'"', tracking_decode)
    assert threads[0] == main and threads[1] != main


@pytest.mark.parametrize("way", [answer, started])
def test_what_goes_wrong_is_answered_by_the_outcome_policy(
    dispatcher: Dispatcher, way: Any
) -> None:
    def handler(resource: str, payload: Any) -> Any:
        if payload == "none":
            return None
        if payload == "bad":
            raise BadRequest("bad payload")
        if payload == "boom":
            raise RuntimeError("secret")
        return {1, 2}  # not JSON

    exchange = Exchange(handler, dispatcher, 10)

    def status(body: bytes) -> tuple[int, str]:
        out = way(exchange, "/r", body)
        outcome = out if isinstance(out, Outcome) else out[0]
        return outcome.status, outcome.message

    assert status(b'"none"') == (404, "resource '/r' is not handled")
    assert status(b'"bad"') == (400, "bad payload")
    code, message = status(b'"boom"')
    assert code == 500 and "RuntimeError" in message and "secret" not in message
    code, message = status(b"{nope")
    assert code == 400 and message.startswith("not JSON")
    code, message = status(b'"set"')
    assert code == 500 and "cannot be sent" in message


def test_a_router_routes_and_an_unrouted_body_that_does_not_decode_is_400(
    dispatcher: Dispatcher,
) -> None:
    router: Router[Any] = Router()

    @router.route("/items/{name}")
    async def item(payload: Any, name: str) -> Any:
        return [name, payload]

    exchange = Exchange(router, dispatcher, 10)
    assert orjson.loads(answer(exchange, "/items/a", b"1").body) == ["a", 1]
    assert answer(exchange, "/elsewhere", b"1").status == 404
    assert answer(exchange, "/elsewhere", b"{bad").status == 400
    assert started(exchange, "/elsewhere", b"1")[0].status == 404
    big = b'"' + b"x" * OFFLOAD_FROM + b'"'
    assert started(exchange, "/elsewhere", big)[0].status == 404


def test_a_body_passed_as_it_is_is_not_decoded(dispatcher: Dispatcher) -> None:
    def size(resource: str, payload: Any) -> Any:
        return [type(payload).__name__, len(payload)]

    exchange = Exchange(size, dispatcher, 10)
    assert orjson.loads(answer(exchange, "/r", b"\x00\x01", None).body) == ["bytes", 2]


@pytest.mark.parametrize("way", [answer, started])
def test_a_handler_past_its_deadline_is_answered_504(dispatcher: Dispatcher, way: Any) -> None:
    async def never(resource: str, payload: Any) -> Any:
        await asyncio.Event().wait()

    out = way(Exchange(never, dispatcher, 0.2), "/r", b"1")
    outcome = out if isinstance(out, Outcome) else out[0]
    assert (outcome.status, outcome.message) == (504, "the handler did not answer within 0.2 s")


def test_a_task_cancelled_by_a_shutdown_is_answered_503(dispatcher: Dispatcher) -> None:
    async def never(resource: str, payload: Any) -> Any:
        await asyncio.Event().wait()

    exchange = Exchange(never, dispatcher, 60)

    async def main() -> Outcome:
        task = asyncio.ensure_future(exchange.answer("/r", b"1", decode, encode))
        await asyncio.sleep(0)  # let it reach the handler
        await asyncio.sleep(0)
        task.cancel()
        return await task

    outcome = asyncio.run(main())
    assert outcome.status == 503 and "before the handler answered" in outcome.message


def test_cut_answers_for_a_pending_exchange(dispatcher: Dispatcher) -> None:
    release = threading.Event()

    def blocked(resource: str, payload: Any) -> Any:
        release.wait(10)
        return 1

    exchange = Exchange(blocked, dispatcher, 60)

    async def main() -> Outcome:
        pending = exchange.start("/r", b"1", decode, encode, lambda o: None)
        assert pending is not None and not pending.done()
        outcome = exchange.cut(pending)
        release.set()
        return outcome

    outcome = asyncio.run(main())
    assert outcome.status == 503
    assert exchange.cut(None).status == 503
