"""dataserve.core.pooled: ``def`` handlers' exchanges on the pool, and the gate on their answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from dataserve.core.deadlines import Watchdogs
from dataserve.core.dispatch import Dispatcher
from dataserve.core.errors import DecodeError, EncodeError, NotHandled
from dataserve.core.outcome import Outcome
from dataserve.core.pooled import HELD, PoolCall, Pooled, encoded, raised, whole


def decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise DecodeError("not JSON") from None


def encode(value: Any) -> tuple[str, bytes]:
    if isinstance(value, set):
        raise EncodeError("a set is not JSON")
    return "json", orjson.dumps(value)


class FakeGate:
    def __init__(self, open: bool = True, cap: int = 1 << 20) -> None:
        self.open = open
        self.cap = cap
        self.calls: set[Any] = set()
        self.waiting: list[Callable[[], None]] = []
        self.held = threading.Event()  # a call was handed back to wait for the gate

    def when_open(self, callback: Callable[[], None]) -> None:
        self.waiting.append(callback)
        self.held.set()

    def opens(self) -> None:
        self.open = True
        waiting, self.waiting = self.waiting, []
        for callback in waiting:
            callback()


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    d = Dispatcher(threads=2, name="pooled-test")
    yield d
    d.close(wait=5)


def test_encoded_none_is_not_handled_and_a_bad_value_cannot_be_sent() -> None:
    assert encoded("/r", [1], encode).body == b"[1]"
    assert encoded("/r", None, encode).status == 404
    bad = encoded("/r", {1}, encode)
    assert bad.status == 500 and "a set is not JSON" in bad.message


def test_raised_keeps_our_errors_and_hides_the_rest() -> None:
    assert raised("/r", NotHandled("gone")).status == 404
    hidden = raised("/r", KeyError("private"))
    assert hidden.status == 500 and "private" not in hidden.message


def test_whole_decodes_calls_and_encodes() -> None:
    seen: list[Any] = []

    def call(payload: Any) -> Any:
        seen.append(payload)
        if payload == "fail":
            raise TimeoutError("the handler's own timeout is a failure")
        return {"got": payload}

    assert whole("/r", b"[1]", decode, call, encode).body == b'{"got":[1]}'
    assert whole("/r", b"raw", None, lambda p: len(p), encode).body == b"3"  # not decoded
    assert whole("/r", b"{", decode, call, encode).status == 400
    assert whole("/r", b'"fail"', decode, call, encode).status == 500


def test_whole_with_a_shut_gate_runs_nothing() -> None:
    ticket: Any = PoolCall(loop=asyncio.new_event_loop())
    try:
        ticket.gate = FakeGate(open=False)
        ran: list[Any] = []
        assert whole("/r", b"1", decode, ran.append, encode, ticket) is HELD
        assert ran == []
        ticket.gate.open = True
        ticket.produced = 0
        outcome = whole("/r", b"1", decode, lambda p: "x" * 10, encode, ticket)
        assert outcome.status == 200 and ticket.produced == len(outcome.body)
    finally:
        ticket.get_loop().close()


def test_answers_made_on_threads_count_against_the_cap() -> None:
    loop = asyncio.new_event_loop()
    try:
        gate = FakeGate(open=True, cap=100)
        earlier: Any = PoolCall(loop=loop)
        earlier.produced = 100
        gate.calls.add(earlier)
        ticket: Any = PoolCall(loop=loop)
        ticket.gate = gate
        assert whole("/r", b"1", decode, lambda p: p, encode, ticket) is HELD
        earlier.produced = 99
        assert whole("/r", b"1", decode, lambda p: p, encode, ticket).status == 200
    finally:
        loop.close()


def run_pooled(
    dispatcher: Dispatcher,
    call: Callable[[Any], Any],
    gate: FakeGate | None,
    timeout: float = 10,
    body: bytes = b"1",
    act: Callable[[PoolCall, FakeGate | None], Any] | None = None,
) -> list[Outcome]:
    got: list[Outcome] = []

    async def main() -> None:
        pooled = Pooled(dispatcher, timeout, Watchdogs(0.05))
        pending = pooled.start(("/r", body, decode, call, encode), got.append, gate)
        if gate is not None:
            assert pending in gate.calls
        if act is not None:
            result = act(pending, gate)
            if asyncio.iscoroutine(result):
                await result
        await asyncio.wait_for(asyncio.shield(pending), 10)

    asyncio.run(main())
    return got


def test_a_started_call_answers_once_and_leaves_the_gate(dispatcher: Dispatcher) -> None:
    gate = FakeGate()
    got = run_pooled(dispatcher, lambda p: p + 1, gate)
    assert [(o.status, o.body) for o in got] == [(200, b"2")]
    assert gate.calls == set()


def test_a_call_held_by_a_shut_gate_runs_once_it_opens(dispatcher: Dispatcher) -> None:
    ran = threading.Event()

    async def open_when_held(pending: PoolCall, gate: FakeGate | None) -> None:
        assert gate is not None
        # the thread found the gate shut and handed the call back
        assert await asyncio.to_thread(gate.held.wait, 10)
        assert not ran.is_set()
        gate.opens()

    def call(payload: Any) -> Any:
        ran.set()
        return "ran"

    got = run_pooled(dispatcher, call, FakeGate(open=False), act=open_when_held)
    assert [o.body for o in got] == [b'"ran"'] and ran.is_set()


def test_a_call_past_its_deadline_is_answered_504(dispatcher: Dispatcher) -> None:
    release = threading.Event()

    def stuck(payload: Any) -> Any:
        release.wait(10)
        return 1

    try:
        got = run_pooled(dispatcher, stuck, None, timeout=0.1)
    finally:
        release.set()
    assert [o.status for o in got] == [504]


def test_cut_gives_up_on_a_running_call(dispatcher: Dispatcher) -> None:
    release = threading.Event()
    entered = threading.Event()

    def stuck(payload: Any) -> Any:
        entered.set()
        release.wait(10)
        return 1

    async def main() -> Outcome:
        pooled = Pooled(dispatcher, 60, Watchdogs(0.05))
        pending = pooled.start(("/r", b"1", decode, stuck, encode), lambda o: None, None)
        assert await asyncio.to_thread(entered.wait, 10)
        return pooled.cut(pending)

    try:
        outcome = asyncio.run(main())
    finally:
        release.set()
    assert outcome.status == 503 and "before the handler answered" in outcome.message


def test_a_closed_pool_answers_503_retry() -> None:
    d = Dispatcher(threads=1)
    d.close(wait=5)
    got = run_pooled(d, lambda p: p, None)
    assert [(o.status, o.retry) for o in got] == [(503, True)]
