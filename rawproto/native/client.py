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
presents a client certificate. ``uds=PATH`` connects to a server's Unix
domain socket instead of TCP.

``send(resource, payload=None, *, into=None, progress=None)`` is
``HTTPDataClient.send``: a file object or path as the payload is streamed,
``into`` streams the reply into a file and returns the number of bytes
written (``rawproto.native.files``). A large answer is read straight into
one buffer of its size (``recv_into``), which becomes the ``bytes`` returned:
one allocation, one copy from the kernel.

Everything but the I/O lives in ``Exchange`` (``rawproto.native.exchange``):
request ids, request frames, the protocol object and turning answers into
values or exceptions. The blocking client uses a plain socket (no event
loop); the asyncio client (``rawproto.native.aclient``) runs a ``Session``
on the engine and pipelines.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from typing import Any, NoReturn

from dataserve.core import errors
from dataserve.core.buffers import BodyBuffer
from dataserve.core.errors import ConnectionClosed

from .._blocking import connect, set_timeout
from ..engine.connection import UNIX_SNDBUF
from ..proto.base import ConnectionClosed as ConnectionClosedEvent
from ..proto.native import Error, NativeConnection, Preface, Reply
from .aclient import AsyncRawDataClient
from .exchange import DEFAULT_TIMEOUT, ClientSettings, Exchange
from .files import PIECE, Meter, Progress, Source, Target, Writable, is_file

__all__ = ["DEFAULT_TIMEOUT", "AsyncRawDataClient", "RawDataClient"]

_WHAT = "rawproto server"
_READ_SIZE = 256 * 1024
# A payload below this is joined to its frame header and sent in one call; a
# larger one is sent on its own, in pieces, so that an early error answer
# (413) stops the upload.
_JOIN_BELOW = 64 * 1024
# An answer with this much left to arrive is read into its own buffer.
_LARGE = 64 * 1024


class RawDataClient(ClientSettings):
    """Blocking native-framing client: ``send(resource, payload=None)``.

    One connection, opened on first use and reopened after the server closed
    it; plain sockets, no event loop. ``timeout`` bounds the wait for each
    answer. ``uds``, ``token``, ``tls``, ``verify``, ``ca_file``, ``cert``:
    see the module docstring. Use it as a context manager, or call ``close()``.
    """

    def _init_state(self) -> None:
        self._sock: socket.socket | None = None
        self._exchange: Exchange | None = None
        self._poller = select.poll()
        self._tls = False
        self._buffer = bytearray(_READ_SIZE)
        self._view = memoryview(self._buffer)

    def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        into: Writable | str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """Send ``payload`` to ``resource`` and return the decoded answer.

        ``payload`` is a value for the codec (``None``: no payload), or a
        binary file object or ``os.PathLike`` path, streamed as
        ``application/octet-stream`` without reading it whole. With ``into``
        (a writable binary file, or a path), the reply's body is streamed
        there as the server encoded it and the number of bytes written is
        returned. ``progress(direction, done, total)`` is called as the
        payload goes out and as the reply is written.
        """
        source = Source(payload) if is_file(payload) else None
        target = Target(into, progress) if into is not None else None
        failed = True
        try:
            exchange, answer = self._call(resource, payload, source, target, progress)
            failed = type(answer) is not Reply
        finally:
            if source is not None:
                source.close()
            if target is not None:
                target.close(failed)
        if exchange.ends_connection(answer):
            self.close()  # the next request goes on a fresh connection
        if target is not None and type(answer) is Reply:
            return target.written
        return exchange.outcome(answer)

    def _call(
        self,
        resource: str,
        payload: Any,
        source: Source | None,
        target: Target | None,
        progress: Progress | None,
    ) -> tuple[Exchange, Reply | Error]:
        sock, exchange = self._connection()
        if source is not None:
            request_id, head = exchange.request_head(resource, exchange.bytes_tag, source.size)
            body: Any = source
        else:
            request_id, head, body = exchange.request_parts(resource, payload)
        try:
            answer = self._upload(sock, exchange, request_id, head, body, progress)
            while answer is None:
                answer = self._answer(sock, exchange, request_id, target)
        except OSError as exc:
            self.close()  # the connection's state is unknown now
            self._socket_error(exc)
        except BaseException:
            self.close()
            raise
        return exchange, answer

    # --- sending ------------------------------------------------------------------

    def _upload(
        self,
        sock: socket.socket,
        exchange: Exchange,
        request_id: int,
        head: bytes,
        body: bytes | Source,
        progress: Progress | None,
    ) -> Reply | Error | None:
        """Send the request; an early answer (413, 503) if the server gave one."""
        size = body.size if isinstance(body, Source) else len(body)
        try:
            if progress is None and not isinstance(body, Source) and size <= _JOIN_BELOW:
                sock.sendall(head + body if body else head)
                return None
        except OSError:
            # The server may have answered (413, 503) and closed: read that.
            return self._early(exchange, request_id, self._drain(sock))
        meter = Meter(progress, "send", size)
        meter.start()
        view = memoryview(body) if not isinstance(body, Source) else None
        sent = 0
        while sent < size or head:
            if view is not None:
                piece: Any = view[sent : sent + PIECE]
            else:
                assert isinstance(body, Source)
                piece = body.read()
                if not piece and sent < size:
                    raise ValueError(f"the file payload ended after {sent} of its {size} bytes")
                piece = piece[: size - sent]  # a file that grew is sent as long as it was
            try:
                # The header goes with the first piece, in one call: the server
                # wakes once for both.
                self._send(sock, head, piece)
            except OSError:
                return self._early(exchange, request_id, self._drain(sock))
            head = b""
            sent += len(piece)
            meter.add(len(piece))
            if sent < size and _readable(sock):
                # An early answer (413) stops the upload.
                answer = self._early(exchange, request_id, sock.recv(_READ_SIZE) or None)
                if answer is not None:
                    return answer
        return None

    def _send(self, sock: socket.socket, head: bytes, piece: Any) -> None:
        """``head`` then ``piece``, neither copied (``sendmsg`` gathers them)."""
        if not head:
            sock.sendall(piece)
            return
        if self._tls:  # no sendmsg on a TLS socket
            sock.sendall(head)
            sock.sendall(piece)
            return
        total = len(head) + len(piece)
        sent = sock.sendmsg((head, piece))
        if sent < total:  # the rest, once the kernel takes more
            with memoryview(piece) as rest:
                if sent < len(head):
                    sock.sendall(head[sent:])
                    sock.sendall(rest)
                else:
                    sock.sendall(rest[sent - len(head) :])

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

    def _early(
        self, exchange: Exchange, request_id: int, data: bytes | None
    ) -> Reply | Error | None:
        exchange.feed(data)
        return self._parsed(exchange, request_id, None, data is None)

    # --- receiving ----------------------------------------------------------------

    def _answer(
        self,
        sock: socket.socket,
        exchange: Exchange,
        request_id: int,
        target: Target | None,
    ) -> Reply | Error | None:
        """Read once (or one large payload whole) and parse: the answer, if it came."""
        proto = exchange.proto
        size = proto.payload_size
        if size and size - proto.payload_buffered >= _LARGE:
            if target is not None and proto.payload_request_id == request_id:
                self._stream_payload(sock, proto, target)
            else:
                self._read_payload(sock, proto)
            return self._parsed(exchange, request_id, target, False)
        n = sock.recv_into(self._view)
        exchange.feed(self._view[:n] if n else None)
        return self._parsed(exchange, request_id, target, not n)

    def _parsed(
        self, exchange: Exchange, request_id: int, target: Target | None, eof: bool
    ) -> Reply | Error | None:
        while True:
            event = exchange.next_event()
            if event is None:
                break
            if type(event) is Reply or type(event) is Error:
                if event.request_id == request_id:
                    if target is not None and type(event) is Reply:
                        target.open(len(event.body))  # a success: the file is made
                        target.write(event.body)
                    return event
                if event.request_id == 0 and type(event) is Error:
                    raise exchange.connection_error(event)
            elif isinstance(event, ConnectionClosedEvent):
                raise exchange.closed()
        if eof:
            raise exchange.closed()
        return None

    def _read_payload(self, sock: socket.socket, proto: NativeConnection) -> None:
        """The rest of a large payload, read into one buffer of its size."""
        body = BodyBuffer(proto.payload_size)
        flags = 0 if self._tls else socket.MSG_WAITALL
        try:
            body.advance(proto.payload_prefix(body.view))
            while not body.complete:
                n = sock.recv_into(body.remaining(), 0, flags)
                if not n:
                    raise self._exchange_closed()
                body.advance(n)
        except BaseException:
            body.discard()
            raise
        proto.receive_payload(body.finish())

    def _stream_payload(self, sock: socket.socket, proto: NativeConnection, target: Target) -> None:
        """The rest of a large payload, written into ``target`` piece by piece."""
        size = proto.payload_size
        target.open(size)
        view = self._view
        left = size - proto.payload_prefix(view)
        target.write(view[: size - left])
        while left:
            n = sock.recv_into(view, min(left, len(view)))
            if not n:
                raise self._exchange_closed()
            target.write(view[:n])
            left -= n
        proto.receive_payload(None)

    def _exchange_closed(self) -> ConnectionClosed:
        return ConnectionClosed(
            f"the server at {self.address} closed the connection in the middle of an answer"
        )

    # --- the connection -----------------------------------------------------------

    def _connection(self) -> tuple[socket.socket, Exchange]:
        sock, exchange = self._sock, self._exchange
        if sock is not None and exchange is not None:
            if not self._stale(sock, exchange):
                return sock, exchange
            self.close()
        sock = self._connect()
        set_timeout(sock, self.timeout)
        exchange = Exchange(self.address, self.codecs, self.max_frame_size, self.token)
        try:
            sock.sendall(exchange.opening())
        except OSError as exc:
            sock.close()
            self._socket_error(exc)
        except BaseException:
            sock.close()
            raise
        self._sock, self._exchange = sock, exchange
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._tls = isinstance(sock, ssl.SSLSocket)
        return sock, exchange

    def _connect(self) -> socket.socket:
        if self.uds is None:
            return connect(self.host, self.port, self.connect_timeout, _WHAT, self.ssl_context)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UNIX_SNDBUF)
            sock.settimeout(self.connect_timeout)
            sock.connect(self.uds)
            if self.ssl_context is not None:
                return self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except OSError as exc:
            sock.close()
            raise errors.ConnectError(
                f"cannot connect to the {_WHAT} at {self.address}: {exc.strerror or exc}"
            ) from exc
        return sock

    def _socket_error(self, exc: OSError) -> NoReturn:
        # BlockingIOError: the kernel's timeout on a blocking socket (set_timeout).
        if isinstance(exc, (TimeoutError, BlockingIOError)):
            raise errors.TimeoutError(
                f"no answer from the {_WHAT} at {self.address} within {self.timeout} s"
            ) from None
        raise errors.ConnectionClosed(
            f"connection to the {_WHAT} at {self.address} lost: {exc.strerror or exc}"
        ) from exc

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
