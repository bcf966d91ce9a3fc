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

Where each part lives: ``session`` (``Session``, ``Service``,
``ConnectionCounter``), ``connection`` (``Connection``: the asyncio callbacks,
the session's API, closing), ``pump`` (events to the session, requests in
flight, coalesced writes, the deadline timer), ``flow_control``
(``FlowControl``: reading paused, writers waiting), ``deadlines`` (which
deadline applies, as a pure function of the connection's state), ``server``
(``RawServer``, ``open_connection``), ``registry`` (a server's open
connections),
``loop`` (uvloop, the shared loop thread), ``running`` (serving from
blocking code: until a signal, or in the background) and ``oneshot``
(``OneShot``: the lighter connection for a framing that answers one
document and closes, pyts; a service with ``one_shot = True`` is served on
it, with the same limits, deadlines, shutdown and metrics).
"""

from __future__ import annotations

from .connection import Connection as Connection
from .deadlines import LINGER_SECONDS as LINGER_SECONDS
from .flow_control import WRITE_HIGH_WATER as WRITE_HIGH_WATER
from .flow_control import WRITE_LOW_WATER as WRITE_LOW_WATER
from .server import RawServer as RawServer
from .server import bind_socket as bind_socket
from .server import open_connection as open_connection
from .session import ConnectionCounter as ConnectionCounter
from .session import Service as Service
from .session import Session as Session
from .session import SessionFactory as SessionFactory

__all__ = [
    "Connection",
    "ConnectionCounter",
    "RawServer",
    "Service",
    "Session",
    "bind_socket",
    "open_connection",
]
