"""``OneShot``: the lighter connection for framings that answer one document and close.

pyts' wire carries one request document and one answer per connection. On
the full engine (``Connection``: channel, pump, session) such a connection
pays for machinery it never uses: a session object, coalesced writes
flushed on a later turn, a task per request, read pausing and resuming,
several timer decisions. ``OneShot`` is an ``asyncio.Protocol`` that does
only what one exchange needs, with the same rules:

* **Open.** The registry's connection limit and shutdown refusal
  (``Registry.refusal``: the protocol's 503 answer, then a lingering close),
  the count and the counter (``connection_metrics``), as ``Connection``.
* **Read.** ``data_received`` feeds the sans-IO protocol and asks it for the
  document at once. A ``RemoteProtocolError`` (413 over the size limit, 400
  not a document...) is answered with ``proto.error_reply`` and a lingering
  close. The complete request goes to ``service.respond(shot, event)``,
  which starts the handler without a task of its own where it needs none
  (``dataserve.core.guard.Guard.start``) and returns what still runs (a pool
  call, a task) or ``None``. Bytes after the document are discarded; reading
  pauses if more arrive while the handler runs.
* **Answer.** ``answer(event)`` (or ``write`` and ``close``) hands the bytes
  to the transport in one ``transport.write`` and closes. A reply the peer
  does not take at once stays with the transport, which closes once it is
  written; ``send_timeout`` ends a peer that takes none of it.
* **Deadlines.** One ``loop.call_at`` handle, armed when the connection
  opens for the idle deadline and moved earlier only when a document begins
  (the frame deadline); when it fires the connection asks
  ``rawproto.engine.deadlines.deadline`` which applies now, as
  ``Connection`` does. A deadline that passes is answered with the
  protocol's 408 (pyts: its 408 document) and the connection closes.
* **Shutdown.** ``RawServer.stop`` calls ``_begin_shutdown`` (a quiet
  connection closes; one receiving a document or waiting for its handler
  finishes), then ``_abandon`` when the grace period ends
  (``service.abandoned(shot)``: the 503 answer), then ``abort``.

A service is served this way when it has ``one_shot = True`` (see
``OneShotService``); ``RawServer`` picks the connection class.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, Protocol, cast

from dataserve.core.errors import RemoteProtocolError
from dataserve.core.limits import Limits

from ..proto.base import NEED_DATA, ConnectionClosed, Event, FrameError, ProtocolConnection
from .channel import close_transport
from .deadlines import LINGER_SECONDS, ConnectionTimer, deadline, expiry_message
from .registry import Registry

__all__ = ["OneShot", "OneShotService", "is_one_shot"]

logger = logging.getLogger("rawproto.engine")


class OneShotService(Protocol):
    """What a ``RawServer`` serves on ``OneShot`` connections."""

    #: True: serve this service's connections with ``OneShot``.
    one_shot: ClassVar[bool]

    def protocol(self) -> ProtocolConnection:
        """A new server-side sans-IO protocol object, for one connection."""
        ...

    def respond(self, shot: OneShot, event: object) -> asyncio.Future[Any] | None:
        """Answer ``event`` (``shot.answer``), now or later; return what still runs
        (cancelled if the connection goes first), or ``None``."""
        ...

    def abandoned(self, shot: OneShot) -> None:
        """The shutdown grace period ended before the answer: answer now (503)."""
        ...

    async def aclose(self) -> None: ...


def is_one_shot(service: object) -> bool:
    """Whether ``service`` is served on ``OneShot`` connections."""
    return getattr(service, "one_shot", False) is True


class _Wire(asyncio.Protocol):
    """``OneShot``'s state, writes, closing and deadline (the part that is not the
    asyncio callbacks)."""

    __slots__ = (
        "_closed",
        "_closing",
        "_eof",
        "_frame_started",
        "_last_active",
        "_lingering",
        "_opened_at",
        "_pending",
        "_reading",
        "_registry",
        "_service",
        "_timer",
        "_write_left",
        "_write_paused_at",
        "answering",
        "limits",
        "loop",
        "owner",
        "peername",
        "proto",
        "transport",
    )

    def __init__(self, service: OneShotService, registry: Registry) -> None:
        self._service = service
        self._registry = registry
        self.limits: Limits = registry.limits
        self.loop = asyncio.get_running_loop()
        self.proto: ProtocolConnection = service.protocol()
        self.transport: asyncio.Transport | None = None
        self.peername: Any = None
        #: The request was received and is being answered.
        self.answering = False
        #: The service's object for this connection's exchange, if it keeps one.
        self.owner: Any = None
        self._pending: asyncio.Future[Any] | None = None
        self._reading = True
        self._eof = False
        self._closing = False
        self._lingering = False
        self._closed = False
        self._opened_at = self._last_active = 0.0
        self._frame_started: float | None = None
        self._write_paused_at: float | None = None
        self._write_left = 0
        self._timer = ConnectionTimer(self.loop, self._on_timer)

    def answer(self, event: Event) -> None:
        """Send ``event`` and close. ``proto.send`` raises as it would anyway
        (``LocalProtocolError``: a second answer, one it cannot encode), even
        once the connection is closed."""
        self.write(self.proto.send(event))
        self.close()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hand ``data`` to the transport now."""
        if data and not self._closing and not self._closed and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        """Close once what was written is sent (lingering if the peer may still send)."""
        if self._closing or self._closed or self.transport is None:
            return
        self._closing = True
        if close_transport(self.transport, linger=self.proto.mid_frame and not self._eof):
            self._begin_linger()
            return
        if self.transport.get_write_buffer_size():
            self._arm(self.loop.time())  # a reply not yet taken: send_timeout applies

    def abort(self) -> None:
        """Close at once, dropping what is not yet written."""
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_closed(self) -> bool:
        return self._closing or self._closed

    def _fail(self, exc: RemoteProtocolError) -> None:
        """Answer a broken protocol (or a refusal) and close, lingering: the peer
        may still be sending."""
        self._error_reply(exc)
        if not getattr(exc, "fatal", True) or self._closing or self._closed:
            return
        self._closing = True
        assert self.transport is not None
        if close_transport(self.transport, linger=not self._eof):
            self._begin_linger()

    def _error_reply(self, exc: RemoteProtocolError) -> None:
        try:
            self.write(self.proto.error_reply(exc))
        except Exception:
            logger.exception("cannot answer %r to %s", exc, self.peername)

    def _begin_linger(self) -> None:
        self._lingering = True
        self._resume_reading()
        self._timer.set(self.loop.time() + LINGER_SECONDS)

    def _close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _pause_reading(self) -> None:
        if self._reading and self.transport is not None:
            self._reading = False
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._reading and self.transport is not None:
            self._reading = True
            self.transport.resume_reading()

    # --- the deadline -----------------------------------------------------------

    def _deadline(self, now: float) -> tuple[float, Any]:
        proto = self.proto
        return deadline(
            self.limits,
            now=now,
            opened_at=self._opened_at,
            last_active=self._last_active,
            handshake_complete=proto.handshake_complete,
            held=False,
            mid_frame=proto.mid_frame,
            frame_started=self._frame_started,
            in_flight=1 if self.answering and not self._closing else 0,
            busy=False,
            write_paused_at=self._write_paused_at,
        )

    def _arm(self, now: float) -> None:
        """Move the timer earlier if a deadline now applies before it."""
        self._timer.earlier(self._deadline(now)[0])

    def _on_timer(self) -> None:
        if self._closed:
            return
        now = self.loop.time()
        if self._lingering:
            self.abort()
            return
        when, why = self._deadline(now)
        if why == "write" and when <= now and self._progressed(now):
            when = self._deadline(now)[0]  # slow, not gone: its deadline restarts
        if when > now:
            self._timer.set(when)
            return
        if self._closing or why == "write":
            self.abort()  # an answer not taken: it would not get through
            return
        message = expiry_message(why, self.limits)
        logger.debug("closing %s: %s", self.peername, message)
        # A quiet connection closes plainly; a document cut short lingers
        # (the peer may still be sending).
        self._error_reply(FrameError(message, 408))
        self.close()

    def _progressed(self, now: float) -> bool:
        """Whether the peer took some of the reply since the last check."""
        assert self.transport is not None
        left = self.transport.get_write_buffer_size()
        if left >= self._write_left:
            return False
        # A peer reading our answer is not idle either.
        self._write_left = left
        self._write_paused_at = self._last_active = now
        return True


class OneShot(_Wire):
    """One connection that carries one request and its answer (see the module)."""

    __slots__ = ()

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio and uvloop set TCP_NODELAY on TCP transports themselves.
        transport = self.transport = cast(asyncio.Transport, transport)
        self.peername = transport.get_extra_info("peername")
        now = self._opened_at = self._last_active = self.loop.time()
        registry = self._registry
        refusal = registry.refusal()
        if refusal is not None:
            self._fail(refusal)
            return
        registry.connections.add(self)
        if registry.counter is not None:
            registry.counter.connection_opened()
        self._arm(now)

    def data_received(self, data: bytes) -> None:
        if self._closing or self._closed:
            return  # a closing connection discards what the peer still sends
        if self.answering:
            self._pause_reading()  # nothing more is read on this connection
            return
        proto = self.proto
        proto.receive_data(data)
        self._last_active = self.loop.time()
        self._take()

    def eof_received(self) -> bool:
        self._eof = True
        if self._lingering:
            self._close_now()
            return False
        if self._closing or self._closed:
            return False
        if not self.answering:
            self.proto.receive_data(None)
            self._take()
            if not self.answering:
                if not self._closing:
                    self.close()
                return False
        # The answer still goes out on the half-closed connection (TLS cannot
        # half-close: the transport closes whatever we answer).
        return self.transport is not None and self.transport.get_extra_info("ssl_object") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._timer.cancel()
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            # A handler still queued never starts; one running runs on, unheard.
            pending.cancel()
        registry = self._registry
        if self in registry.connections:
            registry.connections.discard(self)
            if registry.counter is not None:
                registry.counter.connection_closed()
            registry.removed()

    def pause_writing(self) -> None:
        transport = self.transport
        self._write_paused_at = self.loop.time()
        self._write_left = transport.get_write_buffer_size() if transport is not None else 0
        self._arm(self._write_paused_at)

    def resume_writing(self) -> None:
        self._write_paused_at = None

    def _take(self) -> None:
        """Ask the protocol for the request; answer what it refuses."""
        try:
            event = self.proto.next_event()
        except RemoteProtocolError as exc:
            self._fail(exc)
            return
        if event is NEED_DATA or event is None:
            if self.proto.mid_frame and self._frame_started is None:
                self._frame_started = self._last_active
                self._arm(self._last_active)
            return
        if isinstance(event, ConnectionClosed):
            return  # the peer left without a word: eof_received closes
        self.answering = True
        try:
            pending = self._service.respond(self, event)
        except Exception:
            logger.exception("answering %s failed", self.peername)
            self.abort()
            return
        if pending is not None and not pending.done() and not self._closed:
            self._pending = pending

    # --- how a server ends it ---------------------------------------------------

    def _begin_shutdown(self) -> None:
        if not self.answering and not self.proto.mid_frame:
            self.close()

    def _abandon(self) -> None:
        if self._closing or self._closed:
            return
        try:
            self._service.abandoned(self)
        except Exception:
            logger.exception("answering %s at shutdown failed", self.peername)
        self.close()
