"""The pump: events from the sans-IO protocol to the session, and the work they start.

``Pump`` is the middle layer of ``Connection`` (``Channel`` -> ``Pump`` ->
``Connection``), the part that runs after every batch of received bytes: it
takes events from the protocol while nothing holds them back (an in-order
request in flight, ``max_pipelined`` requests, a peer that does not read),
hands each to the session, tracks the awaitables the session returns as
requests in flight, decides whether to keep reading, and keeps the
connection's one timer armed for the deadline that applies (which one is
``rawproto.engine.deadlines``' pure function).

``_pump`` runs for every received batch: it reads state into locals and
keeps its checks to attribute tests, and the usual outcome (reading on, no
frame half-received, the idle timer already armed early enough) returns
before any of the bookkeeping below it.

It also stops taking requests once the answers it queued in one batch reach
the output cap (``WRITE_HIGH_WATER``), as the transport's ``pause_writing``
stops it between batches; and when a protocol announces a large payload
(``payload_size``, see ``rawproto.proto.native``), it asks the session for a
buffer of that size (``Session.payload_sink``), into which the connection
then reads the payload directly (``Connection.get_buffer``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from dataserve.core.errors import RemoteProtocolError

from ..proto.base import NEED_DATA, ConnectionClosed, FrameError, ProtocolConnection
from .channel import Channel
from .deadlines import Why, deadline, expiry_message, frame_start
from .flow_control import WRITE_HIGH_WATER

# A payload with at least this much still to arrive is read into its own
# buffer; a smaller rest is cheaper to take through the receive buffer.
PAYLOAD_FROM = 64 * 1024

__all__ = ["Pump"]

logger = logging.getLogger("rawproto.engine")


class Pump(Channel):
    """Events from the protocol to the session, requests in flight, the deadline timer."""

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def update_flow(self) -> None:
        """Re-check whether to read from the peer (after ``session.hold_reading`` changed)."""
        self._update_reading()
        if not self._flow.read_paused and self.proto is not None:
            self._pump()

    def _pump(self) -> None:
        """Take events from the protocol and hand them to the session."""
        session = self.session
        if session is None or self._in_pump:
            return
        self._in_pump = True
        progress = False
        # The default poll() is the protocol's next_event(): called directly.
        next_event = self._next_event
        tasks, max_pipelined = self._tasks, self.limits.max_pipelined
        flow = self._flow
        try:
            while not (
                self._blocked
                or flow.write_paused
                or len(tasks) >= max_pipelined
                or self._out_bytes >= WRITE_HIGH_WATER
                or self._closing
                or self._closed
            ):
                try:
                    if next_event is not None:
                        event = next_event()
                        if event is NEED_DATA or event is None:
                            if self._payloads and self._sink is None:
                                self._offer_payload()
                            break
                    else:
                        event = session.poll()
                        if event is None:
                            break
                except RemoteProtocolError as exc:
                    progress = True
                    self.fail(exc)
                    continue
                progress = True
                if isinstance(event, ConnectionClosed):
                    break  # nothing follows EOF; eof_received closes the connection
                try:
                    result = session.handle(event)
                except Exception:
                    logger.exception("session.handle() raised for %s", self.peername)
                    self.abort()
                    break
                if result is not None:
                    self._track(result)
        finally:
            self._in_pump = False
        capped = self._out_bytes >= WRITE_HIGH_WATER
        self._flush()
        if capped and not flow.write_paused and not self._closed:
            # The answers of this batch reached the cap but the kernel took
            # them at once: the requests left in the buffer go on next turn.
            self.loop.call_soon(self._pump)
        proto = self.proto
        if (
            # The usual state after a batch: nothing held back or half-received,
            # reading on. A timer is armed no later than the idle deadline, the
            # only one that applies now (or none, with requests in flight).
            not flow.read_paused
            and not self._holds
            and not self._blocked
            and not flow.write_paused
            and len(tasks) < max_pipelined
            and not self._closing
            and not self._closed
            and proto is not None
            and not proto.mid_frame
            and proto.handshake_complete
            and self._timer.at <= self._last_active + self.limits.idle_timeout
        ):
            self._frame_started = None
            return
        self._update_reading()
        self._update_timer(progress)

    def _offer_payload(self) -> None:
        """The protocol announced a payload: read a large one into a buffer of its own."""
        proto: Any = self.proto
        size = proto.payload_size
        if not size or size - proto.payload_buffered < PAYLOAD_FROM or self.session is None:
            return
        sink = self.session.payload_sink(size)
        if sink is not None:
            sink.advance(proto.payload_prefix(sink.remaining()))
            self._sink = sink

    def _held(self) -> bool:
        """Take no further event now: backpressure, or an in-order request in flight."""
        return (
            self._blocked
            or self._flow.write_paused
            or len(self._tasks) >= self.limits.max_pipelined
        )

    def _track(self, work: Awaitable[Any]) -> None:
        future = asyncio.ensure_future(work)
        if future.done():
            self._finished(future, resume=False)
            return
        self._tasks.add(future)
        if self.session is not None and not self.session.concurrent:
            self._blocked = True
        future.add_done_callback(self._finished)

    def _finished(self, future: asyncio.Future[Any], resume: bool = True) -> None:
        self._tasks.discard(future)
        if not future.cancelled():
            exc = future.exception()
            if exc is not None:
                logger.error("a request on %s failed: %r", self.peername, exc, exc_info=exc)
                self.abort()
                return
        if self._closed:
            return
        self._last_active = self.loop.time()
        if self._blocked and not self._tasks:
            self._blocked = False
        if resume:
            self._pump()  # events held back while requests ran
        if not self._tasks and not self._closing:
            proto = self.proto
            if self._eof or (self._registry.closing and proto is not None and not proto.mid_frame):
                self.close()

    def _update_reading(self) -> None:
        if self.transport is None or self._closed or self._lingering:
            return
        pause = self._held() or (self.session is not None and self.session.hold_reading)
        if pause:
            self._flow.pause_reading()
        else:
            self._flow.resume_reading()

    # --- the deadline -----------------------------------------------------------------
    # One timer per connection, armed for the earliest relevant deadline and
    # re-checked when it fires, so received bytes never reschedule a timer.

    def _deadline(self, proto: ProtocolConnection, now: float) -> tuple[float, Why]:
        flow, session = self._flow, self.session
        return deadline(
            self.limits,
            now=now,
            opened_at=self._opened_at,
            last_active=self._last_active,
            handshake_complete=proto.handshake_complete,
            held=self._held(),
            mid_frame=proto.mid_frame,
            frame_started=self._frame_started,
            in_flight=len(self._tasks),
            busy=session is not None and session.busy,
            write_paused_at=flow.write_paused_at if flow.write_paused else None,
        )

    def _update_timer(self, progress: bool) -> None:
        proto = self.proto
        if self._closed or self._closing or proto is None:
            return  # (no protocol yet: no deadline applies)
        now = self.loop.time()
        self._frame_started = frame_start(
            mid_frame=proto.mid_frame,
            held=self._held(),
            progress=progress,
            started=self._frame_started,
            now=now,
        )
        when, _ = self._deadline(proto, now)
        self._timer.earlier(when)

    def _on_timer(self) -> None:
        if self._closed:
            return
        if self._lingering or self._closing:
            if self.transport is not None:
                self.transport.abort()
            return
        proto, now = self.proto, self.loop.time()
        if proto is None:
            return
        when, why = self._deadline(proto, now)
        if when > now:
            self._timer.set(when)
            return
        if why == "write" and self._flow.progressed(now):
            # The peer took some of what waits: slow, not gone. Its deadline restarts.
            self._timer.set(self._deadline(proto, now)[0])
            return
        message = expiry_message(why, self.limits)
        logger.debug("closing %s: %s", self.peername, message)
        if why == "write":
            self.abort()  # the peer does not read: an answer would not get through
            return
        # A deadline on a quiet connection needs no lingering close; a frame
        # cut short lingers anyway (the peer may still be sending).
        self._deliver_failure(FrameError(message, 408))
        if not self._closing:
            self.close()
