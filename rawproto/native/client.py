"""Native-framing clients: ``RawDataClient`` (blocking) and ``AsyncRawDataClient``.

Both raise exactly what ``dataserve.HTTPDataClient`` raises for the same
failure: an ERROR frame's code picks the ``ResponseError`` subclass
(``error_for_status``: 404 ``NotHandled``, 500 ``HandlerError``...), a reply
that does not decode is ``DecodeError``, no answer is a ``TransportError``
(``ConnectError``, ``TimeoutError``, ``ConnectionClosed``), a missing or
wrong token ``Unauthorized``.

Both send a token (``token=``, default ``$DATASERVE_TOKEN``) in an AUTH
frame right after the preface when they have one, and speak TLS when asked
(``tls=True``, or any of ``ca_file``, ``cert``, ``verify=False``): the
server's certificate is verified against the system's CAs or ``ca_file``
unless ``verify=False`` is said explicitly; ``cert=(certfile, keyfile)``
presents a client certificate.

Everything but the I/O lives in ``Exchange`` (``rawproto.native.exchange``):
request ids, request frames, the protocol object and turning answers into
values or exceptions. The blocking client uses a plain socket (no event
loop); the asyncio client runs a ``Session`` on the engine and pipelines: any
number of ``send`` calls may be in flight on its one connection, answered in
any order.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from typing import Any

from dataserve.core.errors import ConnectError, ConnectionClosed, RemoteProtocolError, TimeoutError
from dataserve.core.limits import DEFAULT_LIMITS

from .._blocking import connect, raise_socket_error, set_timeout
from ..engine import Connection, Session, open_connection
from ..proto.base import ConnectionClosed as ConnectionClosedEvent
from ..proto.native import HEADER, Error, Preface, Reply
from .exchange import DEFAULT_TIMEOUT, ClientSettings, Exchange

__all__ = ["DEFAULT_TIMEOUT", "AsyncRawDataClient", "RawDataClient"]

_WHAT = "rawproto server"
_READ_SIZE = 256 * 1024
# Large payloads go out in pieces so an early error answer (413) stops the upload.
_SEND_CHUNK = 1024 * 1024
# A payload below this is joined to its frame header and sent in one call; a
# larger one is sent on its own, without copying it into a frame.
_JOIN_BELOW = 64 * 1024
# An answer from this size on is read in one call into its own buffer.
_LARGE = 64 * 1024


class RawDataClient(ClientSettings):
    """Blocking native-framing client: ``send(resource, payload=None)``.

    One connection, opened on first use and reopened after the server closed
    it; plain sockets, no event loop. ``timeout`` bounds the wait for each
    answer. ``token``, ``tls``, ``verify``, ``ca_file``, ``cert``: see the
    module docstring. Use it as a context manager, or call ``close()``.
    """

    def _init_state(self) -> None:
        self._sock: socket.socket | None = None
        self._exchange: Exchange | None = None
        self._poller = select.poll()
        self._large_reply = False
        self._tls = False
        self._buffer = bytearray(_READ_SIZE)
        self._view = memoryview(self._buffer)

    def send(self, resource: str, payload: Any = None) -> Any:
        """Send ``payload`` to ``resource`` and return the decoded answer."""
        sock, exchange = self._connection()
        request_id, head, body = exchange.request_parts(resource, payload)
        try:
            answer = self._upload(sock, exchange, request_id, head, body)
            while answer is None:
                answer = self._answer(exchange, request_id, self._receive(sock, exchange))
        except OSError as exc:
            self.close()  # the connection's state is unknown now
            raise_socket_error(exc, self.host, self.port, self.timeout, _WHAT)
        except BaseException:
            self.close()
            raise
        if exchange.ends_connection(answer):
            self.close()  # the next request goes on a fresh connection
        return exchange.outcome(answer)

    def _receive(self, sock: socket.socket, exchange: Exchange) -> bytes | memoryview | None:
        """The next bytes from the server (``None``: it closed).

        Small reads land in one reused buffer. The rest of a large frame
        whose header has arrived is read in one call into its own ``bytes``
        (``MSG_WAITALL``), which the protocol keeps as the payload without a
        copy when it is all of it.
        """
        if self._large_reply:  # the last answer was large (never with TLS: no flags there)
            want = exchange.proto.body_remaining
            if want >= _LARGE:
                return sock.recv(want, socket.MSG_WAITALL) or None
            if not exchange.proto.mid_frame:
                # Read this one's header alone, so that its payload can be read as above.
                return sock.recv(HEADER.size, socket.MSG_WAITALL) or None
        n = sock.recv_into(self._view)
        return self._view[:n] if n else None

    def _upload(
        self,
        sock: socket.socket,
        exchange: Exchange,
        request_id: int,
        head: bytes,
        body: bytes | memoryview,
    ) -> Reply | Error | None:
        size = len(body)
        try:
            if size <= _JOIN_BELOW:
                sock.sendall(head + body)
                return None
            sock.sendall(head)
        except OSError:
            # The server may have answered (413, 503) and closed: read that.
            return self._answer(exchange, request_id, self._drain(sock))
        with memoryview(body) as view:
            for start in range(0, size, _SEND_CHUNK):
                try:
                    sock.sendall(view[start : start + _SEND_CHUNK])
                except OSError:
                    return self._answer(exchange, request_id, self._drain(sock))
                if start + _SEND_CHUNK < size and _readable(sock):
                    # An early answer (413) stops the upload.
                    answer = self._answer(exchange, request_id, sock.recv(_READ_SIZE) or None)
                    if answer is not None:
                        return answer
        return None

    @staticmethod
    def _drain(sock: socket.socket) -> bytes | None:
        """What the server sent before it closed (``None`` if nothing)."""
        chunks = []
        try:
            while chunk := sock.recv(_READ_SIZE):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks) or None

    def _answer(
        self, exchange: Exchange, request_id: int, data: bytes | memoryview | None
    ) -> Reply | Error | None:
        exchange.feed(data)
        while True:
            event = exchange.next_event()
            if event is None:
                break
            if type(event) is Reply or type(event) is Error:
                if event.request_id == request_id:
                    self._large_reply = (
                        type(event) is Reply and len(event.body) >= _LARGE and not self._tls
                    )
                    return event
                if event.request_id == 0 and type(event) is Error:
                    raise exchange.connection_error(event)
            elif isinstance(event, ConnectionClosedEvent):
                raise exchange.closed()
        if data is None:
            raise exchange.closed()
        return None

    def _connection(self) -> tuple[socket.socket, Exchange]:
        sock, exchange = self._sock, self._exchange
        if sock is not None and exchange is not None:
            if not self._stale(sock, exchange):
                return sock, exchange
            self.close()
        sock = connect(self.host, self.port, self.connect_timeout, _WHAT, self.ssl_context)
        set_timeout(sock, self.timeout)
        exchange = Exchange(self.host, self.port, self.codecs, self.max_frame_size, self.token)
        try:
            sock.sendall(exchange.opening())
        except OSError as exc:
            sock.close()
            raise_socket_error(exc, self.host, self.port, self.timeout, _WHAT)
        except BaseException:
            sock.close()
            raise
        self._sock, self._exchange = sock, exchange
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._large_reply = False
        self._tls = isinstance(sock, ssl.SSLSocket)
        return sock, exchange

    def _stale(self, sock: socket.socket, exchange: Exchange) -> bool:
        """Did the server close (or say something) while we were not asking?

        Between calls the server sends nothing but its preface, or an ERROR
        about the connection (idle timeout, shutdown, a refused token) before
        closing it. What arrived is read into the exchange; anything but the
        preface means a fresh connection is used instead of failing the next
        request.
        """
        tls = self._tls
        if not (self._poller.poll(0) or (tls and sock.pending())):  # type: ignore[attr-defined]
            return False
        try:
            if tls:  # no recv flags with TLS
                timeout = sock.gettimeout()
                sock.setblocking(False)
                try:
                    data = sock.recv(_READ_SIZE)
                finally:
                    sock.settimeout(timeout)
            else:
                data = sock.recv(_READ_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, ssl.SSLWantReadError):
            return False  # TLS records that carried no data
        except OSError:
            return True
        if not data:
            return True
        try:
            events = exchange.receive(data)
        except ConnectionClosed:
            return True
        return any(not isinstance(event, Preface) for event in events)

    def close(self) -> None:
        sock, self._sock, self._exchange = self._sock, None, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> RawDataClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _readable(sock: socket.socket) -> bool:
    """Bytes wait to be read (in the kernel, or already decrypted by TLS)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], 0)[0])


class _ClientSession(Session):
    """The asyncio client's side of a connection: answers resolve their futures."""

    concurrent = True

    def __init__(self, conn: Connection, exchange: Exchange) -> None:
        super().__init__(conn, exchange.proto)
        self.exchange = exchange
        self.pending: dict[int, asyncio.Future[Reply | Error]] = {}
        #: Why the server closed the connection (an ERROR with id 0), if it said.
        self.error: Exception | None = None

    def opened(self) -> None:
        self.conn.write(self.exchange.opening())

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def handle(self, event: object) -> None:
        if isinstance(event, (Reply, Error)):
            if event.request_id == 0 and isinstance(event, Error):
                self.error = self.exchange.connection_error(event)
                self._fail_all(self.error)
                self.conn.close()
                return
            future = self.pending.pop(event.request_id, None)
            if future is not None and not future.done():
                future.set_result(event)
            if self.exchange.ends_connection(event):
                self.conn.close()  # as the server does: later requests reconnect

    def failed(self, exc: RemoteProtocolError) -> None:
        self._fail_all(
            ConnectionClosed(
                f"the server at {self.exchange.address} broke the native protocol: {exc.message}"
            )
        )
        self.conn.close()

    def closed(self, exc: BaseException | None) -> None:
        self._fail_all(self.exchange.closed())

    def _fail_all(self, error: Exception) -> None:
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)


class AsyncRawDataClient(ClientSettings):
    """asyncio native-framing client that pipelines on one connection.

    ``await client.send(resource, payload=None)`` may be called by many tasks
    at once: the requests share the connection and each answer finds its
    caller by request id. The connection opens on first use and reopens after
    the server closed it. ``token``, ``tls``, ``verify``, ``ca_file``,
    ``cert``: see the module docstring. ``async with`` or ``await aclose()``.
    """

    def _init_state(self) -> None:
        self._session: _ClientSession | None = None
        self._lock: asyncio.Lock | None = None

    async def send(self, resource: str, payload: Any = None) -> Any:
        """Send ``payload`` to ``resource`` and return the decoded answer."""
        session = await self._connection()
        exchange, conn = session.exchange, session.conn
        request_id, data = exchange.request(resource, payload)
        future: asyncio.Future[Reply | Error] = conn.loop.create_future()
        if conn.is_closed:
            # Closed while connecting: by a refused token, say.
            raise session.error or exchange.closed()
        session.pending[request_id] = future
        conn.write(data)
        # A large upload waits for the socket here. If the connection drops,
        # the session fails the future: the wait below reports it.
        with contextlib.suppress(ConnectionError):
            await conn.drain()
        try:
            answer = await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:
            session.pending.pop(request_id, None)
            raise TimeoutError(
                f"no answer from the {_WHAT} at {exchange.address} within {self.timeout} s"
            ) from None
        return exchange.outcome(answer)

    async def _connection(self) -> _ClientSession:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            session = self._session
            if session is not None and not session.conn.is_closed:
                return session
            exchange = Exchange(self.host, self.port, self.codecs, self.max_frame_size, self.token)
            limits = DEFAULT_LIMITS.replace(
                frame_timeout=self.timeout or DEFAULT_LIMITS.frame_timeout,
                max_frame_size=self.max_frame_size,
            )
            try:
                conn = await open_connection(
                    lambda conn: _ClientSession(conn, exchange),
                    self.host,
                    self.port,
                    limits=limits,
                    timeout=self.connect_timeout,
                    ssl_context=self.ssl_context,
                )
            except (OSError, asyncio.TimeoutError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
                raise ConnectError(
                    f"cannot connect to the {_WHAT} at {exchange.address}: {reason}"
                ) from exc
            assert isinstance(conn.session, _ClientSession)
            self._session = conn.session
            return conn.session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.conn.close()
            await session.conn.closed_future

    async def __aenter__(self) -> AsyncRawDataClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
