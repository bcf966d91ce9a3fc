"""rawproto.engine.deadlines: which deadline applies, and when, as a pure function of state."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataserve.core.limits import Limits
from rawproto.engine.deadlines import ConnectionTimer, deadline, expiry_message, frame_start

from .mock_transport import VirtualClockLoop, run_virtual

LIMITS = Limits(handshake_timeout=10, frame_timeout=30, idle_timeout=60)

#: A quiet connection after its handshake: only the idle deadline applies.
QUIET: dict[str, Any] = {
    "now": 500.0,
    "opened_at": 100.0,
    "last_active": 400.0,
    "handshake_complete": True,
    "held": False,
    "mid_frame": False,
    "frame_started": None,
    "in_flight": 0,
    "busy": False,
    "write_paused_at": None,
}


def at(**state: Any) -> tuple[float, str]:
    return deadline(LIMITS, **{**QUIET, **state})


def test_a_quiet_connection_is_idle_from_its_last_activity() -> None:
    assert at() == (460.0, "idle")


def test_until_the_handshake_completes_only_the_handshake_deadline_applies() -> None:
    assert at(handshake_complete=False) == (110.0, "handshake")
    # Neither a frame begun nor requests in flight give the peer more time.
    assert at(handshake_complete=False, mid_frame=True, frame_started=450.0) == (
        110.0,
        "handshake",
    )
    assert at(handshake_complete=False, in_flight=3, held=True) == (110.0, "handshake")


def test_a_frame_must_complete_within_the_frame_timeout_of_its_start() -> None:
    assert at(mid_frame=True, frame_started=450.0) == (480.0, "frame")
    # A frame that begins now (its start not recorded yet) runs from now.
    assert at(mid_frame=True, frame_started=None) == (530.0, "frame")


def test_a_frame_in_progress_wins_over_requests_in_flight() -> None:
    assert at(mid_frame=True, frame_started=450.0, in_flight=2, busy=True) == (480.0, "frame")


def test_no_deadline_while_requests_are_in_flight_or_the_session_is_busy() -> None:
    assert at(in_flight=1) == (math.inf, "")
    assert at(busy=True) == (math.inf, "")


def test_no_deadline_while_the_engine_holds_the_bytes_back() -> None:
    # The bytes wait in our buffer because we do not take them: not the peer's fault.
    assert at(held=True, mid_frame=True, frame_started=450.0) == (math.inf, "")
    assert at(held=True) == (math.inf, "")


def test_a_peer_that_reads_nothing_is_given_up_on_when_that_comes_first() -> None:
    assert at(write_paused_at=420.0) == (450.0, "write")  # before idle at 460
    assert at(write_paused_at=440.0) == (460.0, "idle")  # idle comes first
    assert at(write_paused_at=420.0, held=True, in_flight=5) == (450.0, "write")
    assert at(write_paused_at=90.0, handshake_complete=False) == (110.0, "handshake")
    assert at(write_paused_at=70.0, handshake_complete=False) == (100.0, "write")


def test_each_deadline_follows_its_own_limit() -> None:
    limits = Limits(handshake_timeout=1, frame_timeout=2, idle_timeout=3, send_timeout=4)
    state = {**QUIET, "opened_at": 0.0, "last_active": 0.0, "now": 0.0}
    assert deadline(limits, **{**state, "handshake_complete": False}) == (1.0, "handshake")
    assert deadline(limits, **{**state, "mid_frame": True, "frame_started": 0.0}) == (2.0, "frame")
    assert deadline(limits, **state) == (3.0, "idle")
    assert deadline(limits, **{**state, "in_flight": 1, "write_paused_at": 0.0}) == (4.0, "write")


times = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(
    now=times,
    opened_at=times,
    last_active=times,
    handshake_complete=st.booleans(),
    held=st.booleans(),
    mid_frame=st.booleans(),
    frame_started=st.none() | times,
    in_flight=st.integers(0, 300),
    busy=st.booleans(),
    write_paused_at=st.none() | times,
)
def test_the_deadline_is_the_earliest_that_applies(**state: Any) -> None:
    when, why = deadline(LIMITS, **state)
    assert (when == math.inf) == (why == "")
    if state["write_paused_at"] is not None:
        assert when <= state["write_paused_at"] + LIMITS.send_timeout
    if why == "idle":
        assert when == state["last_active"] + LIMITS.idle_timeout
        assert not state["in_flight"] and not state["busy"] and not state["mid_frame"]
    if not state["handshake_complete"]:
        assert why in ("handshake", "write")
        assert when <= state["opened_at"] + LIMITS.handshake_timeout


# --- frame_start -------------------------------------------------------------------------


def test_a_frame_starts_when_its_first_bytes_are_handled() -> None:
    assert frame_start(mid_frame=True, held=False, progress=False, started=None, now=5.0) == 5.0


def test_more_bytes_of_the_same_frame_keep_its_start() -> None:
    assert frame_start(mid_frame=True, held=False, progress=False, started=1.0, now=5.0) == 1.0


def test_a_batch_that_made_events_leaves_a_new_frame_begun_now() -> None:
    assert frame_start(mid_frame=True, held=False, progress=True, started=1.0, now=5.0) == 5.0


@pytest.mark.parametrize(("mid_frame", "held"), [(False, False), (False, True), (True, True)])
def test_no_frame_start_between_frames_or_while_held(mid_frame: bool, held: bool) -> None:
    assert frame_start(mid_frame=mid_frame, held=held, progress=True, started=1.0, now=5.0) is None


# --- what the peer is told ---------------------------------------------------------------


def test_each_expiry_says_which_limit_passed() -> None:
    limits = Limits(handshake_timeout=2.5, frame_timeout=30, idle_timeout=60)
    assert expiry_message("handshake", limits) == "no handshake within 2.5 s"
    assert expiry_message("frame", limits) == "frame not complete within 30 s"
    assert expiry_message("idle", limits) == "idle for 60 s"
    assert expiry_message("write", limits) == "peer read nothing for 30 s"


def test_the_connection_timer_moves_only_earlier_and_fires_once() -> None:
    async def main(loop: VirtualClockLoop) -> list[float]:
        fired: list[float] = []
        timer = ConnectionTimer(loop, lambda: fired.append(loop.time()))
        assert timer.at == math.inf
        timer.earlier(loop.time() + 10)
        timer.earlier(loop.time() + 20)  # later: ignored
        assert timer.at == loop.time() + 10
        timer.earlier(loop.time() + 5)
        await loop.advance(5)
        assert timer.at == math.inf  # fired, disarmed before the callback
        await loop.advance(10)  # the first time was cancelled when it moved
        timer.set(loop.time() + 1)
        timer.cancel()
        await loop.advance(2)
        return [t - 1000 for t in fired]

    assert run_virtual(main) == [5.0]


def test_the_connection_timer_may_be_armed_again_from_its_callback() -> None:
    async def main(loop: VirtualClockLoop) -> int:
        count = 0

        def again() -> None:
            nonlocal count
            count += 1
            if count < 3:
                timer.set(loop.time() + 1)

        timer = ConnectionTimer(loop, again)
        timer.set(loop.time() + 1)
        for _ in range(5):
            await loop.advance(1)
        return count

    assert run_virtual(main) == 3
