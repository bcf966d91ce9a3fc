"""rawproto.engine.pump: events from the protocol to the session, and the work they start.

On a mock transport (``mock_transport.py``), as uvicorn's protocol tests do:
bytes go in through ``data_received``, and the test looks at what the session
saw, what is in flight, and whether the transport was told to pause reading.
Real sockets are ``test_engine_server.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from dataserve.core.limits import Limits
from rawproto.engine import WRITE_HIGH_WATER
from rawproto.engine.pump import PAYLOAD_FROM, Pump

from .lines import ConcurrentLineSession, Line, LineService, LineSession
from .mock_transport import VirtualClockLoop, connect, run_virtual


def test_a_connection_is_a_pump_and_starts_with_nothing_in_flight() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, _ = connect(LineService().session)
        assert isinstance(conn, Pump)
        assert conn.in_flight == 0

    run_virtual(main)


def test_payload_from_is_a_sensible_threshold() -> None:
    assert 4096 <= PAYLOAD_FROM <= WRITE_HIGH_WATER * 4


def test_an_awaitable_that_is_already_done_is_never_in_flight() -> None:
    class Done(LineSession):
        def handle(self, event: object) -> Awaitable[Any] | None:
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            self.service.seen += 1
            return future

    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(Done)
        conn, t = connect(service.session)
        conn.data_received(b"!a\nb\nc\n")
        assert service.seen == 3 and conn.in_flight == 0 and t.reading

    run_virtual(main)


def test_an_in_order_session_takes_the_next_event_only_when_the_first_finishes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()
        conn, t = connect(service.session)
        conn.data_received(b"!wait\nnext\n")
        assert (service.seen, conn.in_flight, t.reading) == (1, 1, False)
        service.go.set()
        await loop.advance(0)
        assert service.seen == 2 and conn.in_flight == 0 and t.reading
        assert t.sent() == b"!done\necho next\n"

    run_virtual(main)


def test_a_concurrent_session_runs_requests_side_by_side_up_to_max_pipelined() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(ConcurrentLineSession)
        conn, t = connect(service.session, limits=Limits(max_pipelined=3))
        conn.data_received(b"!" + b"wait\n" * 5)
        assert (service.seen, conn.in_flight, t.reading) == (3, 3, False)
        service.go.set()
        await loop.advance(0)
        assert service.seen == 5
        await loop.advance(0)
        assert conn.in_flight == 0 and t.reading
        assert t.sent() == b"!" + b"done\n" * 5

    run_virtual(main)


def test_a_cancelled_request_is_not_a_failure() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()
        conn, t = connect(service.session)
        conn.data_received(b"!wait\n")
        (task,) = conn._tasks
        task.cancel()
        await loop.advance(0)
        assert conn.in_flight == 0 and not t.aborted and t.reading

    run_virtual(main)


def test_update_flow_resumes_a_session_that_held_reading() -> None:
    class Holding(LineSession):
        behind = True

        @property
        def hold_reading(self) -> bool:
            return self.behind

    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(Holding)
        conn, t = connect(service.session)
        conn.data_received(b"!a\n")
        assert not t.reading and service.seen == 1
        session = conn.session
        assert isinstance(session, Holding)
        session.behind = False
        conn.update_flow()
        assert t.reading

    run_virtual(main)


def test_a_session_with_its_own_poll_is_polled() -> None:
    class Polled(LineSession):
        polls = 0

        def poll(self) -> object | None:
            Polled.polls += 1
            return super().poll()

    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(Polled)
        conn, t = connect(service.session)
        conn.data_received(b"!a\nb\n")
        assert Polled.polls >= 3  # two lines and the NEED_DATA after them
        assert t.sent() == b"!echo a\necho b\n"

    run_virtual(main)


def test_a_protocol_error_mid_batch_is_answered_and_stops_the_batch() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()
        conn, t = connect(service.session)
        conn.data_received(b"!ok\n" + b"x" * 101)
        assert t.sent() == b"!echo ok\nERR 413 line too long\n"
        assert conn.is_closed

    run_virtual(main)


def test_eof_after_the_last_request_closes_once_it_finishes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()
        conn, t = connect(service.session)
        conn.data_received(b"!wait\n")
        conn.eof_received()
        assert not t.closed
        service.go.set()
        await loop.advance(0)
        assert t.closed and t.sent() == b"!done\n"

    run_virtual(main)


def test_a_batch_of_answers_over_the_output_cap_takes_the_rest_next_turn() -> None:
    class Big(LineSession):
        def handle(self, event: object) -> Awaitable[Any] | None:
            assert isinstance(event, Line)
            self.service.seen += 1
            self.conn.send(Line(b"x" * WRITE_HIGH_WATER))
            return None

    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(Big)
        conn, _ = connect(service.session)
        conn.data_received(b"!a\nb\n")
        assert service.seen == 1  # the first answer reached the cap
        await loop.advance(0)
        assert service.seen == 2

    run_virtual(main)
