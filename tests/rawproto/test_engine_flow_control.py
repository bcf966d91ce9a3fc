"""rawproto.engine.flow_control: reading paused once per change, writers released or failed."""

from __future__ import annotations

import asyncio

import pytest

from rawproto.engine.flow_control import WRITE_HIGH_WATER, WRITE_LOW_WATER, FlowControl

from .mock_transport import MockTransport, VirtualClockLoop, run_virtual


def attached() -> tuple[FlowControl, MockTransport]:
    transport = MockTransport()
    flow = FlowControl()
    flow.attach(transport)  # type: ignore[arg-type]
    return flow, transport


def test_attaching_sets_the_water_marks() -> None:
    flow, transport = attached()
    assert transport.marks == [(WRITE_HIGH_WATER, WRITE_LOW_WATER)]
    flow.empty_marks()
    flow.normal_marks()
    assert transport.marks[1:] == [(0, 0), (WRITE_HIGH_WATER, WRITE_LOW_WATER)]


def test_reading_is_paused_and_resumed_on_the_transport_only_when_it_changes() -> None:
    flow, transport = attached()
    flow.resume_reading()  # reading already: nothing to do
    flow.pause_reading()
    flow.pause_reading()
    assert flow.read_paused and not transport.reading and transport.pauses == 1
    flow.resume_reading()
    assert not flow.read_paused and transport.reading


def test_a_transport_that_closed_under_us_is_not_an_error() -> None:
    class Closed(MockTransport):
        def pause_reading(self) -> None:
            raise RuntimeError("the transport is closing")

    flow = FlowControl()
    flow.attach(Closed())  # type: ignore[arg-type]
    flow.pause_reading()
    assert flow.read_paused


def test_writers_wait_until_writing_resumes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        flow, _ = attached()
        flow.pause_writing(loop.time())
        assert flow.write_paused and flow.write_paused_at == loop.time()
        waiters = [flow.waiter(loop), flow.waiter(loop)]
        await loop.advance(0)
        assert not any(w.done() for w in waiters)
        flow.resume_writing()
        assert not flow.write_paused
        assert [w.result() for w in waiters] == [None, None]

    run_virtual(main)


def test_writers_waiting_when_the_connection_closes_get_connection_reset() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        flow, _ = attached()
        flow.pause_writing(loop.time())
        waiter = flow.waiter(loop)
        cancelled = flow.waiter(loop)
        cancelled.cancel()  # a writer that gave up is left alone
        flow.fail_waiters("connection closed")
        with pytest.raises(ConnectionResetError, match="connection closed"):
            await waiter
        flow.resume_writing()  # no waiter left to release
        assert cancelled.cancelled()

    run_virtual(main)


def test_flow_control_holds_no_loop_until_asked() -> None:
    flow = FlowControl()  # made before any loop runs, as a Connection's is
    assert not flow.read_paused and not flow.write_paused
    loop = asyncio.new_event_loop()
    try:
        assert not flow.waiter(loop).done()
    finally:
        loop.close()
