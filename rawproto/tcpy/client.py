"""``TCPClient``: a blocking tcpy client on a plain socket (no event loop)."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any

from dataserve.core import errors
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.net import FACADE_CLIENT_TIMEOUT

from .._blocking import connect, translate_errors
from .._security import client_context
from ..proto import tcpy as proto
from ..proto.tcpy import DEFAULT_PORT

__all__ = ["TCPClient"]

_READ_SIZE = 256 * 1024
_WHAT = "tcpy server"


class TCPClient:
    """A blocking tcpy client.

    ``execute(cmd, **params)`` sends one request and returns the reply map;
    like the original it opens a connection for the request and closes it
    after, unless ``connect()`` was called first, in which case the open
    connection is used and stays open for more requests. ``send``/``recv``
    talk to a handler that converses. Error replies are returned as they
    are, as the original does; failing to get an answer raises a
    ``dataserve.core.errors.TransportError`` (``ConnectError``,
    ``TimeoutError``, ``ConnectionClosed``) and closes the connection.
    TLS when ``tls=True`` or any of ``ca_file``, ``cert``, ``verify=False``
    is given (the server is verified unless ``verify=False``).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = DEFAULT_PORT,
        *,
        timeout: float | None = FACADE_CLIENT_TIMEOUT,
        limits: Limits | None = None,
        tls: bool | ssl.SSLContext = False,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.timeout = timeout
        self.limits = limits or DEFAULT_LIMITS
        self.ssl_context = client_context(tls, verify=verify, ca_file=ca_file, cert=cert)
        self._sock: socket.socket | None = None
        self._conn: proto.Connection | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """Connect to the server (nothing to do if already connected)."""
        self._open()

    def disconnect(self) -> None:
        """Close the connection (nothing to do if not connected)."""
        sock, self._sock, self._conn = self._sock, None, None
        if sock is not None:
            sock.close()

    def send(self, data: Any) -> None:
        """Send one message (a dict), connecting first if needed."""
        self._write(lambda conn: conn.send(proto.Message(data)))

    def recv(self) -> Any:
        """Wait for the server's next message and return it."""
        if self._sock is None or self._conn is None:
            raise errors.ConnectionClosed("not connected: call connect() or send() first")
        sock, conn = self._sock, self._conn
        try:
            with self._translated():
                while True:
                    event = conn.next_event()
                    if isinstance(event, proto.Message):
                        return event.data
                    if isinstance(event, proto.ConnectionClosed):
                        raise errors.ConnectionClosed(
                            f"the tcpy server at {self.host}:{self.port} closed the connection"
                        )
                    conn.receive_data(sock.recv(_READ_SIZE))
        except errors.DataServeError:
            self.disconnect()
            raise

    def execute(self, cmd: str, **params: Any) -> Any:
        """Run ``cmd`` on the server with ``params`` and return its reply."""
        request = proto.Request(cmd, params)
        keep = self.connected
        try:
            self._write(lambda conn: conn.send(request))
            return self.recv()
        finally:
            if not keep:
                self.disconnect()

    def _open(self) -> tuple[socket.socket, proto.Connection]:
        if self._sock is None or self._conn is None:
            self._sock = connect(self.host, self.port, self.timeout, _WHAT, self.ssl_context)
            self._conn = proto.Connection(proto.Role.CLIENT, self.limits)
        return self._sock, self._conn

    def _write(self, encode: Callable[[proto.Connection], bytes]) -> None:
        sock, conn = self._open()
        data = encode(conn)
        try:
            with self._translated():
                sock.sendall(data)
        except errors.DataServeError:
            self.disconnect()
            raise

    def _translated(self) -> contextlib.AbstractContextManager[None]:
        return translate_errors(self.host, self.port, self.timeout, _WHAT)

    def __enter__(self) -> TCPClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()
