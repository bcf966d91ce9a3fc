"""Which deadline applies to a connection, and when: pure functions of its state.

A connection has one timer, armed for the deadline that applies now; when it
fires the connection asks again, so received bytes never reschedule it. The
rules, every number from ``dataserve.core.limits.Limits``:

* **handshake**: until the protocol's handshake is complete, ``opened_at +
  handshake_timeout``;
* no deadline while the engine itself holds events back (backpressure, an
  in-order request in flight): the bytes wait in our buffer, not the peer;
* **frame**: a frame begun must be complete within ``frame_timeout`` of its
  start: an absolute deadline, not reset by each byte, so a trickling peer
  cannot hold a connection;
* no deadline while requests are in flight or the session is ``busy``;
* **idle**: otherwise, ``last_active + idle_timeout``;
* **write**: whichever of those applies, a peer that takes none of our
  writes for ``send_timeout`` (since writing paused, or since it last took
  some) is given up on if that comes first.

``LINGER_SECONDS`` bounds the lingering close (see ``Connection.close``).
``ConnectionTimer`` is that one timer, shared by ``Connection`` and ``OneShot``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Literal

from dataserve.core.limits import Limits

__all__ = [
    "LINGER_SECONDS",
    "ConnectionTimer",
    "Why",
    "deadline",
    "expiry_message",
    "frame_start",
]

# How long a closing connection keeps discarding the peer's bytes so that an
# error answer is read before the connection resets.
LINGER_SECONDS = 2.0

#: Which deadline it is ("": none applies, the time is ``math.inf``).
Why = Literal["", "handshake", "frame", "idle", "write"]


def deadline(
    limits: Limits,
    *,
    now: float,
    opened_at: float,
    last_active: float,
    handshake_complete: bool,
    held: bool,
    mid_frame: bool,
    frame_started: float | None,
    in_flight: int,
    busy: bool,
    write_paused_at: float | None,
) -> tuple[float, Why]:
    """The loop time at which the connection times out, and why (see the module).

    ``held``: the engine takes no event now (backpressure, or an in-order
    request in flight). ``frame_started``: when the frame being received
    began (``None``: it begins ``now``). ``write_paused_at``: since when the
    transport's write buffer is over its high-water mark and the peer took
    nothing of it (``None``: it is not over the mark).
    """
    when: float
    why: Why
    if not handshake_complete:
        when, why = opened_at + limits.handshake_timeout, "handshake"
    elif held:
        # Bytes wait in the buffer because we hold them back, not the peer.
        when, why = math.inf, ""
    elif mid_frame:
        start = frame_started if frame_started is not None else now
        when, why = start + limits.frame_timeout, "frame"
    elif in_flight or busy:
        when, why = math.inf, ""
    else:
        when, why = last_active + limits.idle_timeout, "idle"
    if write_paused_at is not None:
        stall = write_paused_at + limits.send_timeout
        if stall < when:
            when, why = stall, "write"
    return when, why


def frame_start(
    *, mid_frame: bool, held: bool, progress: bool, started: float | None, now: float
) -> float | None:
    """When the frame being received began, after a batch of bytes was handled.

    ``progress``: the batch produced events, so a frame still incomplete is a
    new one. A frame held back by the engine has no start: its deadline only
    runs once the engine reads again.
    """
    if not mid_frame or held:
        return None
    if progress or started is None:
        return now
    return started


def expiry_message(why: Why, limits: Limits) -> str:
    """What the peer (and the log) is told when the deadline ``why`` passed."""
    return {
        "handshake": f"no handshake within {limits.handshake_timeout:g} s",
        "frame": f"frame not complete within {limits.frame_timeout:g} s",
        "idle": f"idle for {limits.idle_timeout:g} s",
        "write": f"peer read nothing for {limits.send_timeout:g} s",
        "": "no deadline",
    }[why]


class ConnectionTimer:
    """A connection's one loop timer: ``at`` is when it fires (``math.inf``: never).

    ``set`` arms it for a time, ``earlier`` only if that comes before ``at``
    (received bytes never push a deadline back: it is asked again when the
    timer fires), ``cancel`` disarms it. Firing disarms it, then calls
    ``callback``, which may arm it again.
    """

    __slots__ = ("_callback", "_handle", "_loop", "at")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self.at = math.inf

    def set(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.at = when
        if when != math.inf:
            self._handle = self._loop.call_at(when, self._fire)

    def earlier(self, when: float) -> None:
        if when < self.at:
            self.set(when)

    def cancel(self) -> None:
        self.set(math.inf)

    def _fire(self) -> None:
        self._handle = None
        self.at = math.inf
        self._callback()
