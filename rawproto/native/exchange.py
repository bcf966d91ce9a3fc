"""What the two native clients share, none of it I/O: settings, frames out, values back.

``Exchange`` is the I/O-free half of one client connection: it numbers
requests, builds their frames, parses the server's bytes and turns each
answer into a value or the exception ``dataserve.HTTPDataClient`` would
raise for it. ``ClientSettings`` holds the arguments both clients take.
``RawDataClient`` (blocking sockets) and ``AsyncRawDataClient`` (the engine)
differ only in how bytes move (``rawproto.native.client``).
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from dataserve.core.client_options import ClientOptions
from dataserve.core.codec import BYTES, CodecRegistry, default_registry
from dataserve.core.endpoint import exclusive
from dataserve.core.errors import (
    ConnectionClosed,
    DataServeError,
    DecodeError,
    RemoteProtocolError,
    error_for_status,
)
from dataserve.core.net import CLIENT_TIMEOUT, CONNECT_TIMEOUT, DEFAULT_HOST
from dataserve.core.security import token_from_env

from .._security import client_context
from ..proto.base import NEED_DATA, Event, Role
from ..proto.base import ConnectionClosed as ConnectionClosedEvent
from ..proto.native import DEFAULT_MAX_FRAME_SIZE, Auth, Error, NativeConnection, Reply

__all__ = ["CONNECT_TIMEOUT", "DEFAULT_TIMEOUT", "ClientSettings", "Exchange"]

#: Seconds to wait for an answer: handlers may be slow and payloads large.
DEFAULT_TIMEOUT = CLIENT_TIMEOUT


class Exchange:
    """The I/O-free half of a client connection: frames out, values back."""

    def __init__(
        self,
        address: str,
        codecs: CodecRegistry,
        max_frame_size: int,
        token: str | None = None,
    ) -> None:
        self.address = address
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
        tag, body = self.codecs.encode_tag(payload)
        request_id, head = self.request_head(resource, tag, len(body))
        return request_id, head, body

    def request_head(self, resource: str, tag: int, size: int) -> tuple[int, bytes]:
        """A new request id and the header (with the resource) of a REQUEST whose
        ``size``-byte payload of codec ``tag`` the caller sends after it."""
        if not resource.startswith("/"):
            resource = "/" + resource  # as the HTTP client: resources are paths
        self._last_id = request_id = self._last_id % 0xFFFFFFFF + 1  # 1..2**32-1, 0 is reserved
        return request_id, self.proto.request_head(request_id, resource, tag, size)

    @property
    def bytes_tag(self) -> int:
        """The tag a file's bytes go with (``application/octet-stream``)."""
        return self.codecs.for_media_type(BYTES).tag

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


class ClientSettings:
    """The settings both native clients share; each adds its connection state
    in ``_init_state``. ``uds`` is the path of a server's Unix domain socket,
    used instead of TCP (``port`` may then be left out).
    ``options=ClientOptions(...)`` gives the timeouts, TLS settings and token
    as one value instead of the separate keywords: ``read_timeout`` is
    ``timeout`` (each answer, and each blocking send), ``connect_timeout``
    the same; ``write_timeout`` and ``pool_timeout`` are HTTP's."""

    def __init__(
        self,
        port: int | None = None,
        host: str = DEFAULT_HOST,
        *,
        uds: str | os.PathLike[str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = CONNECT_TIMEOUT,
        codecs: CodecRegistry = default_registry,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        token: str | None = None,
        tls: bool | ssl.SSLContext = False,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
        options: ClientOptions | None = None,
    ) -> None:
        if port is None and uds is None:
            raise TypeError("give the server's port, or uds= the path of its Unix socket")
        if options is None:
            options = ClientOptions(
                connect_timeout=connect_timeout,
                read_timeout=timeout,
                write_timeout=timeout,
                token=token,
                tls=tls,
                verify=verify,
                ca_file=ca_file,
                cert=cert,
            )
        else:
            exclusive(
                "options",
                {
                    "timeout": timeout != DEFAULT_TIMEOUT,
                    "connect_timeout": connect_timeout != CONNECT_TIMEOUT,
                    "token": token is not None,
                    "tls": tls is not False,
                    "verify": verify is not True,
                    "ca_file": ca_file is not None,
                    "cert": cert is not None,
                },
            )
        #: The timeouts, TLS settings and token this client uses.
        self.options = options
        self.host = host
        self.port = port or 0
        self.uds = os.fspath(uds) if uds is not None else None
        #: How messages name the server: ``host:port``, or ``unix:PATH``.
        self.address = f"unix:{self.uds}" if self.uds is not None else f"{host}:{port}"
        self.timeout = options.read_timeout
        self.connect_timeout = options.connect_timeout
        self.codecs = codecs
        self.max_frame_size = max_frame_size
        self.token = token_from_env(options.token)
        self.ssl_context = client_context(
            options.tls, verify=options.verify, ca_file=options.ca_path, cert=options.cert
        )
        self._init_state()

    def _init_state(self) -> None:
        raise TypeError("use RawDataClient or AsyncRawDataClient")
