"""dataserve.http.pipeline: requests answered one at a time, in order, the queue bounded."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from uvicorn.protocols.http.flow_control import service_unavailable

from dataserve.http.flow import PIPELINE, ReadFlow
from dataserve.http.pipeline import Pipeline

from .fakes import Transport


class Cycle:
    def __init__(self, name: str, ran: list[tuple[str, Any]]) -> None:
        self.name = name
        self.ran = ran
        self.response_complete = False
        self.was_lost = False

    async def run_asgi(self, app: Any) -> None:
        self.ran.append((self.name, app))

    def lost(self) -> None:
        self.was_lost = True


def app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called here")


def pipeline(max_pipelined: int = 2, limit: int | None = None) -> tuple[Pipeline, ReadFlow, Any]:
    flow = ReadFlow(Transport())
    state = SimpleNamespace(connections=set(), tasks=set())
    loop = asyncio.get_running_loop()
    p = Pipeline(loop, app, state, flow, limit_concurrency=limit, max_pipelined=max_pipelined)
    return p, flow, state


def test_requests_are_answered_in_the_order_they_came() -> None:
    async def main() -> None:
        p, _, state = pipeline(max_pipelined=10)
        ran: list[tuple[str, Any]] = []
        first, second, third = (Cycle(n, ran) for n in ("first", "second", "third"))
        p.add(first)  # type: ignore[arg-type]
        p.add(second)  # type: ignore[arg-type]
        p.add(third)  # type: ignore[arg-type]
        assert p.current is first and p.answering and p.queued and len(state.tasks) == 1
        await asyncio.sleep(0)
        assert ran == [("first", app)]
        first.response_complete = True
        assert not p.answering
        assert p.advance() and p.current is second
        second.response_complete = True
        assert p.advance() and p.current is third and not p.queued
        third.response_complete = True
        assert not p.advance()
        for _ in range(3):  # the last task runs, then its done callbacks
            await asyncio.sleep(0)
        assert [name for name, _ in ran] == ["first", "second", "third"]
        assert not state.tasks  # each task is forgotten once done

    asyncio.run(main())


def test_a_full_queue_stops_reading_until_it_shrinks() -> None:
    async def main() -> None:
        p, flow, _ = pipeline(max_pipelined=2)
        ran: list[tuple[str, Any]] = []
        cycles = [Cycle(str(i), ran) for i in range(3)]
        for cycle in cycles:
            p.add(cycle)  # type: ignore[arg-type]
        assert flow.holds(PIPELINE)  # two queued behind the first
        cycles[0].response_complete = True
        p.advance()
        assert not flow.holds(PIPELINE)

    asyncio.run(main())


def test_over_the_concurrency_limit_the_answer_is_503() -> None:
    async def main() -> None:
        p, _, state = pipeline(limit=1)
        state.connections.add(object())
        ran: list[tuple[str, Any]] = []
        p.add(Cycle("over", ran))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert ran == [("over", service_unavailable)]

    asyncio.run(main())


def test_a_lost_connection_tells_every_request() -> None:
    async def main() -> None:
        p, _, _ = pipeline()
        ran: list[tuple[str, Any]] = []
        cycles = [Cycle(str(i), ran) for i in range(2)]
        for cycle in cycles:
            p.add(cycle)  # type: ignore[arg-type]
        p.lost()
        assert all(cycle.was_lost for cycle in cycles)

    asyncio.run(main())
