"""``Connection``: one connection driven by the engine, an ``asyncio.BufferedProtocol``.

The asyncio callbacks (``connection_made``, ``get_buffer``/``buffer_updated``,
``eof_received``, ``connection_lost``, ``pause_writing``, ``resume_writing``)
feed the sans-IO protocol and run the pump (``rawproto.engine.pump``), the
layer below, which sits on the byte side (``rawproto.engine.channel``:
writes and closing). This top layer adds what happens when a connection
opens (the session is made, the connection limit applied) and ends (the
registry and the session are told), and the server's side of a graceful
shutdown: ``_begin_shutdown`` and ``_abandon``, which ``RawServer.stop``
calls, and ``_refuse`` for a connection over the limit.

Reads land in one buffer the server's connections share (each read is
handed to its protocol, which copies what it keeps, before the next read can
happen), except while a large payload is due: then the socket is read
straight into that payload's own buffer (``Session.payload_sink``), so a
64 MiB payload is one allocation and one kernel copy, handed to the
protocol whole (``receive_payload``). ``data_received`` remains, for code
and tests that feed bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any, cast

from ..proto.base import FrameError
from .pump import Pump
from .session import Session, SessionFactory

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["UNIX_SNDBUF", "Connection"]

#: The send buffer asked for on Unix domain socket connections.
UNIX_SNDBUF = 4 * 1024 * 1024

logger = logging.getLogger("rawproto.engine")


class Connection(Pump):
    """One TCP connection driven by the engine (an ``asyncio.Protocol``).

    Public API for sessions: ``send(event)``, ``write(data)``, ``flush()``,
    ``drain(empty=False)``, ``close()``, ``abort()``, ``fail(exc)``,
    ``update_flow()``; ``closing`` (graceful shutdown began), ``is_closed``,
    ``peername``, ``sockname``, ``socket``, ``last_active``, ``in_flight``, ``limits``,
    ``loop``, ``closed_future`` (done when the connection is gone).
    """

    def __init__(self, factory: SessionFactory, registry: Registry) -> None:
        super().__init__(registry)
        self._factory = factory
        self.sockname: Any = None
        self._counted = False
        self._tls = False
        self.closed_future: asyncio.Future[None] = self.loop.create_future()

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        transport = self.transport = cast(asyncio.Transport, transport)
        self.peername = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        self._tls = transport.get_extra_info("ssl_object") is not None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                if sock.family == socket.AF_UNIX:
                    # A Unix socket's buffer is its sender's (208 KiB by default,
                    # no autotuning as TCP has): larger, a large answer takes
                    # fewer wake-ups. The kernel caps it at net.core.wmem_max.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UNIX_SNDBUF)
                else:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._flow.attach(transport)
        self._opened_at = self._last_active = self.loop.time()
        registry = self._registry
        try:
            session = self.session = self._factory(self)
        except Exception:
            logger.exception("cannot create a session for %s", self.peername)
            transport.abort()
            return
        self.proto = session.proto
        cls = type(session)
        if cls.poll is Session.poll:
            self._next_event = session.proto.next_event
        self._holds = cls.hold_reading is not Session.hold_reading
        self._payloads = hasattr(session.proto, "payload_size")
        refusal = registry.refusal()
        if refusal is not None:
            self._refuse(refusal)
            return
        registry.connections.add(self)
        self._counted = True
        if registry.counter is not None:
            registry.counter.connection_opened()
        try:
            session.opened()
        except Exception:
            logger.exception("session.opened() failed for %s", self.peername)
            self.abort()
            return
        self._flush()
        self._update_timer(progress=False)

    def get_buffer(self, sizehint: int) -> memoryview:
        sink = self._sink
        if sink is not None:
            return sink.remaining()
        return self._registry.read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        sink = self._sink
        if sink is None:
            self.data_received(self._registry.read_buffer()[:nbytes])
            return
        if self._lingering or self._closed:
            return
        sink.advance(nbytes)
        if not sink.complete:
            return
        self._sink = None
        self._last_active = self.loop.time()
        proto: Any = self.proto
        proto.receive_payload(sink.finish())
        self._pump()

    def data_received(self, data: bytes | memoryview) -> None:
        if self._lingering or self._closed:
            return  # a closing connection discards what the peer still sends
        self._last_active = self.loop.time()
        proto = self.proto
        assert proto is not None
        proto.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        if self._lingering or self._closed:
            return False
        self._eof = True
        proto = self.proto
        assert proto is not None
        proto.receive_data(None)
        self._pump()
        if self._closed or self._closing:
            return False
        if not self._tasks:
            self.close()
            return not self._tls
        # Keep the transport open: replies to what the peer sent still go out.
        # (TLS cannot half-close: the transport closes whatever we answer.)
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._sink is not None:
            self._sink.discard()  # a payload cut short: its memory goes now
            self._sink = None
        self._timer.cancel()
        for task in list(self._tasks):
            # A handler already running keeps running (its result is dropped);
            # one still waiting for the loop is cancelled.
            task.cancel()
        self._flow.fail_waiters("connection closed")
        if self._counted:
            self._registry.connections.discard(self)
            self._counted = False
            if self._registry.counter is not None:
                self._registry.counter.connection_closed()
            self._registry.removed()
        if self.session is not None:
            try:
                self.session.closed(exc)
            except Exception:
                logger.exception("session.closed() failed for %s", self.peername)
        if not self.closed_future.done():
            self.closed_future.set_result(None)

    def pause_writing(self) -> None:
        self._flow.pause_writing(self.loop.time())
        self._update_reading()
        self._update_timer(progress=False)

    def resume_writing(self) -> None:
        self._flow.resume_writing()
        if not self._closing and not self._closed:
            self._pump()  # events held back while the peer did not read

    # --- the session's API ------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Graceful shutdown began: finish what is in flight, start nothing new."""
        return self._registry.closing

    @property
    def last_active(self) -> float:
        """Loop time of the peer's last bytes (or of the last request finished)."""
        return self._last_active

    @property
    def socket(self) -> Any:
        """The transport's socket (a ``TransportSocket``: getpeername() etc.)."""
        return self.transport.get_extra_info("socket") if self.transport else None

    def send(self, event: Any) -> None:
        """Write ``proto.send(event)`` (coalesced with other writes)."""
        proto = self.proto
        assert proto is not None
        self.write(proto.send(event))
        if proto.mid_frame and self._frame_started is None:
            # we now wait for the peer's answer (tinyproto's acknowledgement)
            self._update_timer(progress=False)

    # --- how a server ends it ---------------------------------------------------

    def _refuse(self, refusal: FrameError) -> None:
        """Over the connection limit (or shutting down): answer and close."""
        proto = self.proto
        assert proto is not None and self.transport is not None
        with contextlib.suppress(Exception):
            reply = proto.error_reply(refusal)
            if reply:
                self._out.append(reply)
        self._failed = True  # the peer is about to send: linger so it reads the answer
        self.close()

    def _begin_shutdown(self) -> None:
        """Graceful shutdown: tell the session, close now if quiet, else when done."""
        if self._closed or self._closing:
            return
        session = self.session
        if session is not None:
            try:
                pending = session.closing()
            except Exception:
                logger.exception("session.closing() raised for %s", self.peername)
            else:
                if pending is not None:
                    self._track(pending)
        self._flush()
        proto = self.proto
        if not self._tasks and (proto is None or not proto.mid_frame):
            self.close()
        else:
            self._pump()

    def _abandon(self) -> None:
        """The grace period is over: the session answers what is left, then close."""
        if self._closed or self._closing:
            return
        session = self.session
        if session is not None:
            try:
                session.abandoned()
            except Exception:
                logger.exception("session.abandoned() raised for %s", self.peername)
        self.close()
