"""The one asyncio engine that runs every raw TCP framing.

The engine moves bytes between sockets and sans-IO protocol objects and owns
everything about connections that is not protocol: accepting, the connection
limit, the handshake, frame and idle timeouts, flow control, coalesced
writes, tracking requests in flight and graceful shutdown. What the bytes
mean is decided by two small objects a protocol provides:

``Service``
    One per server. ``service.session(conn)`` makes the ``Session`` for each
    new connection; ``await service.aclose()`` runs once the server has
    stopped (to close a handler pool, say).

``Session``
    One per connection: the glue between the engine and one sans-IO protocol
    object (``session.proto``, see ``rawproto.proto.base.ProtocolConnection``).
    The engine feeds received bytes to the protocol and hands each event to
    ``session.handle(event)``; the session answers with ``conn.send(event)``
    or ``conn.write(data)``. When ``handle`` returns an awaitable (a
    coroutine or a future: a request being served), the engine counts it as
    in flight until it completes. With ``concurrent = False`` (the default)
    the engine stops taking events from the connection while one is in
    flight, so replies go out in request order (tcpy); with
    ``concurrent = True`` they overlap (the native framing pipelines).

Writing a framing on the engine therefore takes: a sans-IO protocol, a
``Session`` subclass overriding ``handle`` (and ``closing``/``closed`` if it
needs them), and a ``Service`` whose ``session()`` builds it.

The session's hooks, all optional but ``handle``: ``opened()`` (default: send
``proto.initiate()``), ``poll()`` (how events are taken from the protocol),
``handle(event)``, ``failed(exc)`` (default: send ``proto.error_reply(exc)``,
close if fatal), ``closing()`` (graceful shutdown began; may return an
awaitable that keeps the connection open, as in flight), ``abandoned()``
(the grace period ended with requests in flight: answer them),
``closed(exc)``;
the properties ``busy`` (true: no idle timeout, e.g. a client waiting for
answers) and ``hold_reading`` (true: stop reading the socket until
``conn.update_flow()``, e.g. a consumer thread is behind); the class
attribute ``concurrent``. The ``Connection`` API a session uses:
``send(event)``, ``write(data)``, ``flush()``, ``await drain(empty=False)``, ``close()``,
``abort()``, ``fail(exc)``, ``update_flow()``, and ``closing``,
``is_closed``, ``in_flight``, ``peername``, ``sockname``, ``socket``,
``limits``, ``loop``, ``closed_future``. Everything else is private::

    class EchoSession(Session):
        concurrent = True

        def handle(self, event):
            if isinstance(event, Request):
                return self.answer(event)   # in flight until it completes
            return None

        async def answer(self, event):
            self.conn.send(Reply(event.request_id, event.body))

    class EchoService:
        def session(self, conn):
            return EchoSession(conn, MyProtocol(Role.SERVER))

        async def aclose(self):
            pass

    server = await RawServer(EchoService(), port=0).start()
    ... server.port ...
    await server.stop()

Behaviour (every number comes from ``dataserve.core.limits.Limits``):

* **Handshake.** ``session.opened()`` sends ``proto.initiate()``; a peer whose
  ``proto.handshake_complete`` is still false after ``handshake_timeout`` gets
  ``proto.error_reply`` for a 408 ``FrameError`` and is closed.
* **Frame deadline.** While ``proto.mid_frame`` is true the frame must be
  complete within ``frame_timeout`` of its start: an absolute deadline, not
  reset by each byte, so a trickling peer cannot hold a connection.
* **Idle timeout.** A connection with nothing in flight and no partial frame
  is closed after ``idle_timeout`` (408 reply first).
* **Connection limit.** Above ``max_connections`` a new connection gets
  ``proto.error_reply`` for a 503 ``FrameError`` (tinyproto's 0xfe, a native
  error frame) and is closed; everyone else is unaffected.
* **Protocol errors.** A ``RemoteProtocolError`` from the protocol goes to
  ``session.failed(exc)``: by default ``proto.error_reply(exc)`` is sent, and
  the connection closes if the error is fatal (``FrameError.fatal``, true for
  any other ``RemoteProtocolError``). Closing after such an error (or with a
  frame cut short) is a lingering close: our side is shut for writing and the
  peer's further bytes are discarded for up to ``LINGER_SECONDS``, so the
  answer is not lost to the reset that closing with unread data causes.
* **Flow control.** Writes made while handling one batch of received bytes,
  or within one loop iteration, are coalesced into one ``writelines``.
  While the transport's write buffer is above its high-water mark the
  engine stops reading (``conn.drain()`` waits for it to fall); a peer that
  does not read for ``frame_timeout`` is closed. Reading also pauses while
  ``max_pipelined`` requests of one connection are in flight.
* **TCP_NODELAY** on every connection; ``reuse_port=True`` sets
  ``SO_REUSEPORT`` on the listener so several processes can share a port.
* **TLS.** ``RawServer(tls=TLSConfig(...))`` serves TLS (the handshake within
  ``handshake_timeout``); ``open_connection(ssl_context=...)`` connects with
  it. Sessions see the same bytes either way. TLS cannot half-close, so a
  peer's EOF closes a TLS connection at once.
* **Graceful shutdown.** ``stop()`` closes the listener (new connections are
  refused), calls ``session.closing()`` on every connection (the native
  framing answers new requests with 503 from then on), lets requests in
  flight finish and their replies drain, and closes each connection once it
  is quiet. When ``shutdown_timeout`` ends with requests still in flight,
  ``session.abandoned()`` answers them (native: 503) and the connections
  close; what is still open ``LINGER_SECONDS`` later is aborted.
* **Metrics.** ``RawServer(connection_metrics=...)`` reports every connection
  opened and closed (``dataserve.ops.transport_metrics(name)``); nothing is
  counted without it.
* **EOF.** A peer that shuts its sending side still gets the replies to
  everything it sent; the connection closes once they are written.

``def`` handlers are the sessions' business: the built-in services call them
through ``dataserve.core.dispatch.Dispatcher`` (a thread pool for ``def``,
inline for ``async def``), so nothing here blocks the loop.

Client side: ``open_connection(factory, host, port)`` runs a ``Session`` on
an outgoing connection with the same machinery (timeouts, flow control,
coalescing). The blocking clients do not use the engine at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, cast

from dataserve.core.errors import RemoteProtocolError
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.net import bind_socket as bind_socket
from dataserve.core.security import TLSConfig

from ..proto.base import NEED_DATA, ConnectionClosed, FrameError, ProtocolConnection

__all__ = [
    "Connection",
    "ConnectionCounter",
    "RawServer",
    "Service",
    "Session",
    "bind_socket",
    "open_connection",
]

logger = logging.getLogger("rawproto.engine")

# Write buffer marks: above HIGH the engine stops reading from the peer;
# drain() waits for LOW. Large enough for a few replies of a pipelined burst.
WRITE_HIGH_WATER = 512 * 1024
WRITE_LOW_WATER = 128 * 1024
# How long a closing connection keeps discarding the peer's bytes so that an
# error answer is read before the connection resets.
LINGER_SECONDS = 2.0


class Session:
    """Per-connection glue between the engine and one sans-IO protocol object.

    Subclass it and override ``handle``. ``self.conn`` is the engine's
    ``Connection`` (``send``, ``write``, ``close``, ``drain``...),
    ``self.proto`` the protocol object.

    ``poll`` is how the engine takes events from the protocol; the default
    calls ``proto.next_event()`` and treats ``NEED_DATA`` (from
    ``rawproto.proto.base``) or ``None`` as "no event yet". Override it for a
    protocol with another sentinel.
    """

    #: True: awaitables returned by ``handle`` run concurrently (pipelining).
    #: False: the engine takes no further event while one is in flight.
    concurrent: ClassVar[bool] = False

    def __init__(self, conn: Connection, proto: ProtocolConnection) -> None:
        self.conn = conn
        self.proto = proto

    # --- protocol access (the engine's side) ---------------------------------

    def opened(self) -> None:
        """The connection is up: send the protocol's opening bytes, if any."""
        data = self.proto.initiate()
        if data:
            self.conn.write(data)

    def poll(self) -> object | None:
        """The next event from the protocol, or ``None`` if it needs more data."""
        event = self.proto.next_event()
        if event is NEED_DATA:
            return None
        return event

    # --- application (yours) ---------------------------------------------------

    def handle(self, event: object) -> Awaitable[Any] | None:
        """Act on one event; return an awaitable for work that continues.

        The engine counts the awaitable as in flight until it completes and
        logs (and closes the connection on) any exception it raises. The
        default ignores every event.
        """
        return None

    def failed(self, exc: RemoteProtocolError) -> None:
        """The peer broke the protocol, or a deadline passed.

        Default: send ``proto.error_reply(exc)``; close unless the error is a
        non-fatal ``FrameError``.
        """
        reply = self.proto.error_reply(exc)
        if reply:
            self.conn.write(reply)
        if getattr(exc, "fatal", True):
            self.conn.close()

    @property
    def hold_reading(self) -> bool:
        """True to stop reading from the peer (the session's consumer is behind).

        Call ``conn.update_flow()`` when it turns false again.
        """
        return False

    @property
    def busy(self) -> bool:
        """True while the session waits for something the engine does not track.

        A client waiting for replies is not idle: no idle timeout applies.
        """
        return False

    def closing(self) -> Awaitable[Any] | None:
        """Graceful shutdown began: requests in flight may finish, take no new ones.

        Return an awaitable to keep the connection open until it completes
        (work the engine does not see, such as a thread still handling what
        was received); it counts as in flight.
        """
        return None

    def abandoned(self) -> None:
        """The shutdown grace period ended with requests still in flight.

        Write the protocol's answer for them now (an error frame, an error
        reply): the connection closes right after. Default: nothing.
        """

    def closed(self, exc: BaseException | None) -> None:
        """The connection is gone (``exc`` is the OS error, if any)."""


class ConnectionCounter(Protocol):
    """What a server reports its connections to (``dataserve.ops.TransportMetrics``)."""

    def connection_opened(self) -> None: ...

    def connection_closed(self) -> None: ...


class Service(Protocol):
    """What a ``RawServer`` serves: a factory of sessions and a closing hook."""

    def session(self, conn: Connection) -> Session:
        """The ``Session`` for a new connection (cheap; called on every accept)."""
        ...

    async def aclose(self) -> None:
        """Called once after the server stopped and every connection closed."""
        ...


SessionFactory = Callable[["Connection"], Session]


class _Registry:
    """The open connections of one server (or of one client's outgoing ones)."""

    def __init__(
        self,
        limits: Limits,
        max_connections: int | None = None,
        counter: ConnectionCounter | None = None,
    ) -> None:
        self.limits = limits
        self.max_connections = max_connections
        self.counter = counter
        self.connections: set[Connection] = set()
        self.closing = False
        self.all_closed: asyncio.Event | None = None

    def removed(self) -> None:
        if not self.connections and self.all_closed is not None:
            self.all_closed.set()


class Connection(asyncio.Protocol):
    """One TCP connection driven by the engine (an ``asyncio.Protocol``).

    Public API for sessions: ``send(event)``, ``write(data)``, ``flush()``,
    ``drain(empty=False)``, ``close()``, ``abort()``, ``fail(exc)``,
    ``update_flow()``; ``closing`` (graceful shutdown began), ``is_closed``,
    ``peername``, ``sockname``, ``socket``, ``in_flight``, ``limits``,
    ``loop``, ``closed_future`` (done when the connection is gone).
    """

    def __init__(self, factory: SessionFactory, registry: _Registry) -> None:
        self._factory = factory
        self._registry = registry
        self.limits = registry.limits
        self.loop = asyncio.get_running_loop()
        self.session: Session | None = None
        self.proto: ProtocolConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.peername: Any = None
        self.sockname: Any = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._in_pump = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._blocked = False  # an in-order session has a request in flight
        self._read_paused = False
        self._write_paused = False
        self._write_paused_at = 0.0
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._eof = False
        self._closing = False  # close() called: flushing, then closing
        self._lingering = False
        self._failed = False  # a fatal protocol error: close lingering
        self._closed = False
        self._opened_at = 0.0
        self._last_active = 0.0
        self._frame_started: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._counted = False
        self._tls = False
        # Set once the session is known: its protocol's next_event() when the
        # session keeps the default poll(); whether it may hold reading.
        self._next_event: Callable[[], object] | None = None
        self._holds = False
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
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
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
        limit = registry.max_connections
        if registry.closing or (limit is not None and len(registry.connections) >= limit):
            self._refuse()
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

    def data_received(self, data: bytes) -> None:
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            # A handler already running keeps running (its result is dropped);
            # one still waiting for the loop is cancelled.
            task.cancel()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("connection closed"))
        self._drain_waiters.clear()
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
        self._write_paused = True
        self._write_paused_at = self.loop.time()
        self._update_reading()
        self._update_timer(progress=False)

    def resume_writing(self) -> None:
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if not self._closing and not self._closed:
            self._pump()  # events held back while the peer did not read

    # --- the session's API ------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Graceful shutdown began: finish what is in flight, start nothing new."""
        return self._registry.closing

    @property
    def is_closed(self) -> bool:
        return self._closed or self._closing

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

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

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes; they go out together at the end of this loop iteration."""
        if self._closed or self._closing or not data:
            return
        self._out.append(data)  # type: ignore[arg-type]
        if not self._flush_scheduled and not self._in_pump:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def flush(self) -> bool:
        """Hand queued bytes to the transport now; True if it holds none (all are
        with the kernel: what ``drain(empty=True)`` waits for)."""
        self._flush()
        transport = self.transport
        return transport is not None and not self._closed and not transport.get_write_buffer_size()

    async def drain(self, *, empty: bool = False) -> None:
        """Flush queued bytes and wait until the write buffer is below its low mark.

        ``empty=True`` waits until every byte has been handed to the kernel
        (a blocking ``send`` returns then too): what a thread-style API needs
        before it reports a message as sent.
        """
        self._flush()
        if self._closed or self._closing:
            raise ConnectionResetError("connection closed")
        transport = self.transport
        assert transport is not None
        if empty and transport.get_write_buffer_size():
            # A low mark of 0 makes the transport report an empty buffer.
            transport.set_write_buffer_limits(high=0, low=0)
            try:
                if self._write_paused:
                    await self._drain_waiter()
            finally:
                if not self._closed:
                    transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
            return
        if self._write_paused:
            await self._drain_waiter()

    def _drain_waiter(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._drain_waiters.append(waiter)
        return waiter

    def update_flow(self) -> None:
        """Re-check whether to read from the peer (after ``session.hold_reading`` changed)."""
        self._update_reading()
        if not self._read_paused and self.proto is not None:
            self._pump()

    def close(self) -> None:
        """Send what is queued, then close (lingering: see the module docstring)."""
        if self._closing or self._closed:
            return
        self._closing = True
        self._flush()
        transport = self.transport
        if transport is None:
            return
        self._drain_waiters_fail()
        proto = self.proto
        peer_may_send = self._failed or (proto is not None and proto.mid_frame)
        if self._eof or not peer_may_send or not transport.can_write_eof():
            transport.close()
            return
        # Lingering close: the peer may still be sending (it broke the protocol,
        # or a frame is cut short). FIN our side, discard what it sends, and
        # close on its EOF or after LINGER_SECONDS, so the answer just sent is
        # not destroyed by the reset that closing with unread data causes.
        self._lingering = True
        with contextlib.suppress(OSError, RuntimeError):
            transport.write_eof()
        if self._read_paused:
            self._read_paused = False
            with contextlib.suppress(RuntimeError):
                transport.resume_reading()
        self._set_timer(self.loop.time() + LINGER_SECONDS)

    def abort(self) -> None:
        """Close at once, dropping anything not yet written."""
        self._closing = True
        self._out.clear()
        if self.transport is not None:
            self.transport.abort()

    def fail(self, exc: RemoteProtocolError) -> None:
        """Hand a protocol error to the session (as the engine does itself)."""
        if getattr(exc, "fatal", True):
            self._failed = True
        self._deliver_failure(exc)

    def _deliver_failure(self, exc: RemoteProtocolError) -> None:
        session = self.session
        if session is None:
            self.abort()
            return
        try:
            session.failed(exc)
        except Exception:
            logger.exception("session.failed() raised for %s", self.peername)
            self.abort()
        self._flush()

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

    # --- internals --------------------------------------------------------------

    def _drain_waiters_fail(self) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("connection closing"))
        self._drain_waiters.clear()

    def _refuse(self) -> None:
        """Over the connection limit (or shutting down): answer and close."""
        proto = self.proto
        assert proto is not None and self.transport is not None
        limit = self._registry.max_connections
        reason = (
            "the server is shutting down"
            if self._registry.closing
            else f"the server is at its limit of {limit} connections"
        )
        with contextlib.suppress(Exception):
            reply = proto.error_reply(FrameError(reason, 503))
            if reply:
                self._out.append(reply)
        self._failed = True  # the peer is about to send: linger so it reads the answer
        self.close()

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
        try:
            while not (
                self._blocked
                or self._write_paused
                or len(tasks) >= max_pipelined
                or self._closing
                or self._closed
            ):
                try:
                    if next_event is not None:
                        event = next_event()
                        if event is NEED_DATA or event is None:
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
        self._flush()
        proto = self.proto
        if (
            # The usual state after a batch: nothing held back or half-received,
            # reading on. A timer is armed no later than the idle deadline, the
            # only one that applies now (or none, with requests in flight).
            not self._read_paused
            and not self._holds
            and not self._blocked
            and not self._write_paused
            and len(tasks) < max_pipelined
            and not self._closing
            and not self._closed
            and proto is not None
            and not proto.mid_frame
            and proto.handshake_complete
            and self._timer_at <= self._last_active + self.limits.idle_timeout
        ):
            self._frame_started = None
            return
        self._update_reading()
        self._update_timer(progress)

    def _held(self) -> bool:
        """Take no further event now: backpressure, or an in-order request in flight."""
        return self._blocked or self._write_paused or len(self._tasks) >= self.limits.max_pipelined

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

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out or self.transport is None:
            return
        self._out = []
        try:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writelines(out)
        except RuntimeError:  # the transport closed under us
            pass

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self._closed or self._lingering:
            return
        pause = self._held() or (self.session is not None and self.session.hold_reading)
        if pause and not self._read_paused:
            self._read_paused = True
            with contextlib.suppress(RuntimeError):
                transport.pause_reading()
        elif not pause and self._read_paused:
            self._read_paused = False
            with contextlib.suppress(RuntimeError):
                transport.resume_reading()

    # Timers: one per connection, armed for the earliest relevant deadline and
    # re-checked when it fires, so received bytes never reschedule a timer.

    def _deadline(self) -> tuple[float, str]:
        proto = self.proto
        limits = self.limits
        if proto is None:
            return math.inf, ""
        if not proto.handshake_complete:
            when, why = self._opened_at + limits.handshake_timeout, "handshake"
        elif self._held():
            # Bytes wait in the buffer because we hold them back, not the peer.
            when, why = math.inf, ""
        elif proto.mid_frame:
            start = self._frame_started if self._frame_started is not None else self.loop.time()
            when, why = start + limits.frame_timeout, "frame"
        elif self._tasks or (self.session is not None and self.session.busy):
            when, why = math.inf, ""
        else:
            when, why = self._last_active + limits.idle_timeout, "idle"
        if self._write_paused:
            stall = self._write_paused_at + limits.frame_timeout
            if stall < when:
                when, why = stall, "write"
        return when, why

    def _update_timer(self, progress: bool) -> None:
        if self._closed or self._closing:
            return
        proto = self.proto
        if proto is not None:
            if not proto.mid_frame or self._held():
                self._frame_started = None
            elif progress or self._frame_started is None:
                # a new frame began in the bytes just handled
                self._frame_started = self.loop.time()
        when, _ = self._deadline()
        if when < self._timer_at:
            self._set_timer(when)

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when != math.inf:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self._closed:
            return
        if self._lingering or self._closing:
            if self.transport is not None:
                self.transport.abort()
            return
        when, why = self._deadline()
        if when > self.loop.time():
            self._set_timer(when)
            return
        limits = self.limits
        message = {
            "handshake": f"no handshake within {limits.handshake_timeout:g} s",
            "frame": f"frame not complete within {limits.frame_timeout:g} s",
            "idle": f"idle for {limits.idle_timeout:g} s",
            "write": f"peer read nothing for {limits.frame_timeout:g} s",
        }[why]
        logger.debug("closing %s: %s", self.peername, message)
        if why == "write":
            self.abort()  # the peer does not read: an answer would not get through
            return
        # A deadline on a quiet connection needs no lingering close; a frame
        # cut short lingers anyway (the peer may still be sending).
        self._deliver_failure(FrameError(message, 408))
        if not self._closing:
            self.close()


class RawServer:
    """An asyncio TCP server running ``service`` on the engine.

    ``await start()`` binds (port 0 picks a free port: read ``port`` back) and
    returns once connections are accepted; ``await stop()`` shuts down
    gracefully (see the module docstring). ``sock`` serves an already bound
    listening socket instead. Usable as ``async with RawServer(...) as s``.

    ``tls`` serves TLS (``TLSConfig(cert, key, client_ca)``; with
    ``client_ca`` every client must present a certificate signed by it); the
    TLS handshake must complete within ``limits.handshake_timeout``.
    ``connection_metrics`` is told of every connection opened and closed
    (``dataserve.ops.transport_metrics(name)``).
    """

    def __init__(
        self,
        service: Service,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits | None = None,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        max_connections: int | None = None,
        tls: TLSConfig | None = None,
        connection_metrics: ConnectionCounter | None = None,
    ) -> None:
        self.service = service
        self.host = host
        self.requested_port = port
        self.limits = limits or DEFAULT_LIMITS
        self.reuse_port = reuse_port
        self.tls = tls
        self.connection_metrics = connection_metrics
        self.max_connections = (
            self.limits.max_connections if max_connections is None else max_connections
        )
        self._sock = sock
        self._server: asyncio.base_events.Server | None = None
        self._registry: _Registry | None = None
        self._stopped: asyncio.Event | None = None
        self.port = 0

    @property
    def connections(self) -> int:
        """How many connections are open now."""
        return len(self._registry.connections) if self._registry else 0

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def start(self) -> RawServer:
        if self._server is not None:
            raise RuntimeError("the server is already started")
        # Built first: a certificate that does not load fails before binding.
        context = self.tls.server_context() if self.tls is not None else None
        sock = self._sock or bind_socket(self.host, self.requested_port, reuse_port=self.reuse_port)
        self.port = sock.getsockname()[1]
        self._registry = _Registry(self.limits, self.max_connections, self.connection_metrics)
        self._stopped = asyncio.Event()
        registry, factory = self._registry, self.service.session
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if context is not None:
            tls = {"ssl": context, "ssl_handshake_timeout": self.limits.handshake_timeout}
        try:
            self._server = await loop.create_server(
                lambda: Connection(factory, registry), sock=sock, backlog=4096, **tls
            )
        except BaseException:
            if self._sock is None:
                sock.close()
            raise
        return self

    async def serve_forever(self) -> None:
        """Wait until ``stop()`` has completed."""
        if self._stopped is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let requests in flight finish, close every connection.

        When ``timeout`` (default ``limits.shutdown_timeout``) ends with
        requests still in flight, each session answers them
        (``session.abandoned()``: the native framing's 503 error frame) and
        its connection closes; what is still open ``LINGER_SECONDS`` later
        is aborted. Then ``service.aclose()``.
        """
        server, registry = self._server, self._registry
        if server is None or registry is None:
            return
        self._server = None
        timeout = self.limits.shutdown_timeout if timeout is None else timeout
        server.close()
        registry.closing = True
        registry.all_closed = asyncio.Event()
        for conn in list(registry.connections):
            conn._begin_shutdown()
        registry.removed()
        try:
            await asyncio.wait_for(registry.all_closed.wait(), timeout)
        except asyncio.TimeoutError:
            left = list(registry.connections)
            logger.warning(
                "shutdown grace period of %g s over: closing %d connections with requests "
                "in flight",
                timeout,
                len(left),
            )
            for conn in left:
                conn._abandon()
            try:
                await asyncio.wait_for(registry.all_closed.wait(), LINGER_SECONDS)
            except asyncio.TimeoutError:
                for conn in list(registry.connections):
                    conn.abort()
        with contextlib.suppress(Exception):
            await server.wait_closed()
        try:
            await self.service.aclose()
        finally:
            assert self._stopped is not None
            self._stopped.set()

    async def __aenter__(self) -> RawServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def open_connection(
    factory: SessionFactory,
    host: str,
    port: int,
    *,
    limits: Limits | None = None,
    timeout: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Connection:
    """Connect to ``host:port`` and run ``factory(conn)``'s session on it.

    Returns once the TCP connection (and, with ``ssl_context``, the TLS
    handshake) is up and the session's ``opened()`` has sent its opening
    bytes; ``conn.closed_future`` completes when it closes. Raises
    ``OSError`` (``ConnectionRefusedError``, ``ssl.SSLError``...) or
    ``asyncio.TimeoutError`` as ``loop.create_connection`` does.
    """
    loop = asyncio.get_running_loop()
    registry = _Registry(limits or DEFAULT_LIMITS)
    tls: dict[str, Any] = {}
    if ssl_context is not None:
        tls = {"ssl": ssl_context, "server_hostname": host}
    connect = loop.create_connection(lambda: Connection(factory, registry), host, port, **tls)
    if timeout is not None:
        _, conn = await asyncio.wait_for(connect, timeout)
    else:
        _, conn = await connect
    return conn
