"""dataserve.http.flow: why reading is paused, and peers that stop taking writes."""

from __future__ import annotations

import asyncio

from dataserve.http.flow import BODY, PIPELINE, REFUSED, ReadFlow, WriteFlow

from .fakes import Transport, Watchdog


class Buffered(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.buffered = 0
        self.pauses = self.resumes = 0

    def pause_reading(self) -> None:
        self.pauses += 1
        super().pause_reading()

    def resume_reading(self) -> None:
        self.resumes += 1
        super().resume_reading()

    def get_write_buffer_size(self) -> int:
        return self.buffered


def test_reasons_are_distinct_bits() -> None:
    assert len({PIPELINE, BODY, REFUSED}) == 3
    assert PIPELINE & BODY == BODY & REFUSED == PIPELINE & REFUSED == 0


def test_reading_resumes_only_when_no_reason_is_left() -> None:
    t = Buffered()
    flow = ReadFlow(t)
    assert not flow.paused
    flow.hold(PIPELINE)
    flow.hold(BODY)
    assert (t.pauses, t.reading, flow.paused) == (1, False, True)  # paused once
    assert flow.holds(BODY) and not flow.holds(REFUSED)
    flow.release(BODY)
    assert not t.reading  # the pipeline still holds it
    flow.release(REFUSED)  # not held: nothing happens
    assert t.resumes == 0
    flow.release(PIPELINE)
    assert (t.resumes, t.reading, flow.paused) == (1, True, False)


def test_release_all_drops_every_reason() -> None:
    t = Buffered()
    flow = ReadFlow(t)
    flow.release_all()
    assert t.resumes == 0
    flow.hold(REFUSED)
    flow.hold(BODY)
    flow.release_all()
    assert t.reading and not flow.paused and t.resumes == 1


def test_a_transport_closing_under_the_flow_is_not_an_error() -> None:
    class Closed(Buffered):
        def pause_reading(self) -> None:
            raise RuntimeError("closed")

        def resume_reading(self) -> None:
            raise RuntimeError("closed")

    flow = ReadFlow(Closed())
    flow.hold(BODY)
    flow.release(BODY)
    flow.hold(BODY)
    flow.release_all()


def test_a_peer_that_takes_nothing_for_send_timeout_is_cut() -> None:
    t, dog, stalled = Buffered(), Watchdog(), []
    flow = WriteFlow(t, dog, 30, lambda: stalled.append(True))  # type: ignore[arg-type]
    t.buffered = 1000
    flow.pause()
    flow.pause()  # once paused, one deadline
    assert flow.paused and len(dog.live()) == 1 and dog.live()[0].delay == 30
    dog.live()[0].fire()
    assert stalled == [True] and not flow.paused


def test_a_slow_peer_that_takes_something_keeps_its_connection() -> None:
    t, dog, stalled = Buffered(), Watchdog(), []
    flow = WriteFlow(t, dog, 30, lambda: stalled.append(True))  # type: ignore[arg-type]
    t.buffered = 1000
    flow.pause()
    t.buffered = 400
    dog.live()[0].fire()
    assert stalled == [] and flow.paused and len(dog.live()) == 1  # a new deadline
    dog.live()[0].fire()  # nothing taken since
    assert stalled == [True]


def test_drain_waits_until_writing_resumes_or_the_connection_is_lost() -> None:
    async def main() -> None:
        t, dog = Buffered(), Watchdog()
        dog.loop = asyncio.get_running_loop()  # type: ignore[attr-defined]
        flow = WriteFlow(t, dog, 30, lambda: None)  # type: ignore[arg-type]
        await flow.drain()  # not paused: at once
        flow.pause()
        waiter = asyncio.ensure_future(flow.drain())
        await asyncio.sleep(0)
        assert not waiter.done()
        flow.resume()
        await asyncio.wait_for(waiter, 1)
        assert dog.deadlines[0].stopped
        flow.pause()
        waiter = asyncio.ensure_future(flow.drain())
        await asyncio.sleep(0)
        flow.lost()
        await asyncio.wait_for(waiter, 1)
        assert not flow.paused

    asyncio.run(main())
