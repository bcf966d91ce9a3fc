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

Everything but the I/O lives in ``_Exchange``: request ids, request frames,
the protocol object and turning answers into values or exceptions. The
blocking client uses a plain socket (no event loop); the asyncio client runs
a ``Session`` on the engine and pipelines: any number of ``send`` calls may
be in flight on its one connection, answered in any order.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from typing import Any

from dataserve.core.codec import CodecRegistry, default_registry
from dataserve.core.errors import (
    ConnectError,
    ConnectionClosed,
    DataServeError,
    DecodeError,
    RemoteProtocolError,
    TimeoutError,
    error_for_status,
)
from dataserve.core.limits import DEFAULT_LIMITS
from dataserve.core.security import token_from_env

from .._blocking import connect, raise_socket_error, set_timeout
from .._security import client_context
from ..engine import Connection, Session, open_connection
from ..proto.base import NEED_DATA, Event, Role
from ..proto.base import ConnectionClosed as ConnectionClosedEvent
from ..proto.native import (
    DEFAULT_MAX_FRAME_SIZE,
    HEADER,
    Auth,
    Error,
    NativeConnection,
    Preface,
    Reply,
    Request,
)

__all__ = ["DEFAULT_TIMEOUT", "AsyncRawDataClient", "RawDataClient"]

#: Seconds to wait for an answer: handlers may be slow and payloads large.
DEFAULT_TIMEOUT = 300.0
#: Seconds to wait for the TCP connection.
CONNECT_TIMEOUT = 10.0
_WHAT = "rawproto server"
_READ_SIZE = 256 * 1024
# Large payloads go out in pieces so an early error answer (413) stops the upload.
_SEND_CHUNK = 1024 * 1024
# A payload below this is joined to its frame header and sent in one call; a
# larger one is sent on its own, without copying it into a frame.
_JOIN_BELOW = 64 * 1024
# An answer from this size on is read in one call into its own buffer.
_LARGE = 64 * 1024


class _Exchange:
    """The I/O-free half of a client connection: frames out, values back."""

    def __init__(
        self,
        host: str,
        port: int,
        codecs: CodecRegistry,
        max_frame_size: int,
        token: str | None = None,
    ) -> None:
        self.address = f"{host}:{port}"
        self.codecs = codecs
        self.proto = NativeConnection(Role.CLIENT, max_frame_size=max_frame_size)
        self.token = token
        self._last_id = 0
        self._eof = False

    def opening(self) -> bytes:
        """The preface, then the AUTH frame when there is a token."""
        data = self.proto.initiate()
        if self.token:
            data += self.proto.send(Auth(self.token.encode("utf-8")))
        return data

    def request(self, resource: str, payload: Any) -> tuple[int, bytes]:
        """A new request id and the bytes of its REQUEST frame."""
        request_id, head, body = self.request_parts(resource, payload)
        return request_id, head + body

    def request_parts(self, resource: str, payload: Any) -> tuple[int, bytes, bytes]:
        """A new request id, its REQUEST frame's header (with the resource) and payload."""
        if not resource.startswith("/"):
            resource = "/" + resource  # as the HTTP client: resources are paths
        tag, body = self.codecs.encode_tag(payload)
        self._last_id = request_id = self._last_id % 0xFFFFFFFF + 1  # 1..2**32-1, 0 is reserved
        head, body = self.proto.send_parts(Request(request_id, resource, tag, body))
        return request_id, head, body

    def feed(self, data: bytes | bytearray | memoryview | None) -> None:
        """Bytes from the server (``None``: EOF); ``next_event`` parses them."""
        self._eof = data is None
        self.proto.receive_data(data)

    def next_event(self) -> Event | None:
        """The next event, or ``None`` until more bytes arrive.

        A server that breaks the protocol raises ``ConnectionClosed``.
        """
        try:
            event = self.proto.next_event()
        except RemoteProtocolError as exc:
            if self._eof and not self.proto.handshake_complete:
                raise ConnectionClosed(
                    f"the server at {self.address} closed the connection before sending the "
                    "native protocol's preface (does it serve TLS? another protocol?)"
                ) from exc
            raise ConnectionClosed(
                f"the server at {self.address} broke the native protocol: {exc.message}"
            ) from exc
        return None if event is NEED_DATA else event  # type: ignore[return-value]

    def receive(self, data: bytes | None) -> list[Event]:
        """Feed bytes (``None``: EOF); the answers complete so far."""
        self.feed(data)
        events: list[Event] = []
        while (event := self.next_event()) is not None:
            events.append(event)
            if isinstance(event, ConnectionClosedEvent):
                break
        return events

    def connection_error(self, event: Error) -> DataServeError:
        """The exception for an ERROR frame about the whole connection (id 0)."""
        return error_for_status(event.code, event.message)

    @staticmethod
    def ends_connection(event: Reply | Error) -> bool:
        """The server closes the connection after this answer (id 0, or 413)."""
        return type(event) is Error and (event.request_id == 0 or event.code == 413)

    def outcome(self, event: Reply | Error) -> Any:
        """The value of a REPLY, or raise the exception an ERROR stands for."""
        if type(event) is Error:
            raise error_for_status(event.code, event.message)
        assert isinstance(event, Reply)
        try:
            return self.codecs.decode_tag(event.tag, event.body)
        except DataServeError as exc:
            raise DecodeError(f"undecodable reply from {self.address}: {exc.message}") from exc

    def closed(self) -> ConnectionClosed:
        return ConnectionClosed(
            f"the server at {self.address} closed the connection before answering"
        )


class _ClientSettings:
    """The settings both native clients share; each adds its connection state
    in ``_init_state``."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        codecs: CodecRegistry = default_registry,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        token: str | None = None,
        tls: bool | ssl.SSLContext = False,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.codecs = codecs
        self.max_frame_size = max_frame_size
        self.token = token_from_env(token)
        self.ssl_context = client_context(tls, verify=verify, ca_file=ca_file, cert=cert)
        self._init_state()

    def _init_state(self) -> None:
        raise TypeError("use RawDataClient or AsyncRawDataClient")


class RawDataClient(_ClientSettings):
    """Blocking native-framing client: ``send(resource, payload=None)``.

    One connection, opened on first use and reopened after the server closed
    it; plain sockets, no event loop. ``timeout`` bounds the wait for each
    answer. ``token``, ``tls``, ``verify``, ``ca_file``, ``cert``: see the
    module docstring. Use it as a context manager, or call ``close()``.
    """

    def _init_state(self) -> None:
        self._sock: socket.socket | None = None
        self._exchange: _Exchange | None = None
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

    def _receive(self, sock: socket.socket, exchange: _Exchange) -> bytes | memoryview | None:
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
        exchange: _Exchange,
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
        self, exchange: _Exchange, request_id: int, data: bytes | memoryview | None
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

    def _connection(self) -> tuple[socket.socket, _Exchange]:
        sock, exchange = self._sock, self._exchange
        if sock is not None and exchange is not None:
            if not self._stale(sock, exchange):
                return sock, exchange
            self.close()
        sock = connect(self.host, self.port, self.connect_timeout, _WHAT, self.ssl_context)
        set_timeout(sock, self.timeout)
        exchange = _Exchange(self.host, self.port, self.codecs, self.max_frame_size, self.token)
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

    def _stale(self, sock: socket.socket, exchange: _Exchange) -> bool:
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

    def __init__(self, conn: Connection, exchange: _Exchange) -> None:
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


class AsyncRawDataClient(_ClientSettings):
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
            exchange = _Exchange(self.host, self.port, self.codecs, self.max_frame_size, self.token)
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
