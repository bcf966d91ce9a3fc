"""dataserve.core.deadlines: one sweeping timer per loop instead of a timer per deadline.

The loop's clock is virtual (``tests/rawproto/mock_transport.VirtualClockLoop``):
time moves only when a test says so, and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from dataserve.core.deadlines import Watchdog, Watchdogs, resolution_for
from tests.rawproto.mock_transport import VirtualClockLoop, run_virtual


def test_resolution_is_a_quarter_of_the_shortest_timeout_at_most_a_quarter_second() -> None:
    assert resolution_for(0.4, 10) == 0.1
    assert resolution_for(60, 30) == 0.25
    assert resolution_for(2) == 0.25
    assert resolution_for(0.1) == 0.025
    assert resolution_for() == 0.25  # no timeout: the coarsest


def test_a_resolution_must_be_positive() -> None:
    loop = asyncio.new_event_loop()
    try:
        for bad in (0, -1, float("nan")):
            with pytest.raises(ValueError, match="must be positive"):
                Watchdog(loop, bad)
    finally:
        loop.close()


def test_call_later_fires_after_the_delay_at_most_a_resolution_late() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        dog = Watchdog(loop, 0.1)
        fired: list[float] = []
        dog.call_later(0.25, lambda tag: fired.append(loop.time() - 1000 + tag), 0)
        await loop.advance(0.2)
        assert fired == []
        await loop.advance(0.1)
        assert len(fired) == 1 and 0.25 <= fired[0] <= 0.35 + 1e-9
        assert dog.pending == set() and dog._timer is None  # nothing ticks now

    run_virtual(main)


def test_a_stopped_deadline_never_fires() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        dog = Watchdog(loop, 0.1)
        fired: list[int] = []
        deadline = dog.call_later(0.1, fired.append, 1)
        deadline.stop()
        await loop.advance(1)
        assert fired == [] and not deadline.expired

    run_virtual(main)


def test_restart_moves_the_deadline_and_its_phase() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        dog = Watchdog(loop, 0.1)
        fired: list[str] = []
        deadline = dog.call_later(0.2, lambda: fired.append(deadline.phase))
        await loop.advance(0.1)
        deadline.restart(0.5, "handler")
        await loop.advance(0.3)
        assert fired == []
        await loop.advance(0.3)
        assert fired == ["handler"]

    run_virtual(main)


def test_a_task_deadline_cancels_the_task_which_owns_the_cancellation() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        dog = Watchdog(loop, 0.05)
        outcome: list[str] = []

        async def work() -> None:
            deadline = dog.start(0.1, phase="body")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                outcome.append(f"owned={deadline.owns()} phase={deadline.phase}")
                assert deadline.owns() is False  # only once
            finally:
                deadline.stop()

        task = asyncio.ensure_future(work())
        await loop.advance(0)
        await loop.advance(0.2)
        await task
        assert outcome == ["owned=True phase=body"]
        assert not task.cancelled()

    run_virtual(main)


def test_someone_elses_cancellation_is_not_the_deadlines() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        dog = Watchdog(loop, 0.05)
        owned: list[bool] = []

        async def work() -> None:
            deadline = dog.start(10)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                owned.append(deadline.owns())
                raise
            finally:
                deadline.stop()

        task = asyncio.ensure_future(work())
        await loop.advance(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert owned == [False]

    run_virtual(main)


def test_start_outside_a_task_needs_the_task() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="outside a task"):
            Watchdog(loop, 0.1).start(1)
    finally:
        loop.close()


def test_a_callback_that_raises_does_not_stop_the_sweep(caplog: pytest.LogCaptureFixture) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        dog = Watchdog(loop, 0.1)
        fired: list[int] = []
        dog.call_later(0.1, lambda: 1 / 0)
        dog.call_later(0.1, fired.append, 2)
        await loop.advance(0.2)
        assert fired == [2]

    with caplog.at_level(logging.ERROR, logger="dataserve.deadlines"):
        run_virtual(main)
    assert "a deadline's callback raised" in caplog.text


def test_watchdogs_keep_one_watchdog_per_loop() -> None:
    dogs = Watchdogs(0.2)

    async def mine() -> Watchdog:
        return dogs.get()

    first = asyncio.run(mine())
    assert first.resolution == 0.2
    other = asyncio.new_event_loop()
    try:
        a, b = dogs.get(other), dogs.get(other)
        assert a is b and a.loop is other and a is not first
    finally:
        other.close()
