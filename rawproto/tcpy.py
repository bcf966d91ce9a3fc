"""tcpy's API (seed 002) on rawproto: ``TCPServer``, ``TCPHandler``, ``TCPClient``.

::

    from rawproto.tcpy import TCPServer, TCPHandler, TCPClient

    class AdditionHandler(TCPHandler):
        def __init__(self, x, y):
            self.x = x
            self.y = y

        def execute(self):
            return self.success(solution=self.x + self.y)

    server = TCPServer()
    server.commands = {"add": AdditionHandler}
    server.listen()

    print(TCPClient().execute(cmd="add", x=1, y=2))   # {'success': True, 'solution': 3}

The wire is tcpy's, byte for byte (``rawproto.proto.tcpy``), so clients and
servers of the original interoperate with these. Beyond the original:

* one connection carries any number of requests (the original client's
  one-connection-per-request works too);
* an unknown command, missing or unexpected parameters and a raising handler
  get ``{"error": True, "message": ...}`` replies that say what was wrong,
  and the connection stays usable; a message that is not msgpack, or a
  request that is not a map, gets an error reply and the connection closes;
* every limit of ``dataserve.core.limits.Limits`` applies (frame size,
  msgpack container length and nesting, timeouts, connection count), and
  ``listen()`` stops cleanly on Ctrl-C or SIGTERM, letting running handlers
  finish.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any

from dataserve.core import errors
from dataserve.core.limits import DEFAULT_LIMITS, Limits

from ._blocking import connect, translate_errors
from .proto import tcpy as proto
from .proto.tcpy import DEFAULT_PORT

__all__ = ["DEFAULT_PORT", "TCPClient", "TCPHandler", "TCPServer"]

_READ_SIZE = 256 * 1024
_WHAT = "tcpy server"


# --- the handler base class ------------------------------------------------------------


class _Channel:
    """What a running handler talks to its client through (set by the server)."""

    def send(self, data: Any) -> None:  # pragma: no cover - interface
        raise RuntimeError("not connected")

    def recv(self) -> Any:  # pragma: no cover - interface
        raise RuntimeError("not connected")


class TCPHandler:
    """Base class of tcpy handlers: subclass it and define ``execute()``.

    The request's parameters are passed to ``__init__`` as keyword
    arguments; ``execute()`` runs on one of the server's handler threads and
    returns the reply, usually ``self.success(...)`` or ``self.error(...)``.
    During ``execute()``, ``send(data)`` and ``recv()`` converse with the
    client on the same connection. Calling ``super().__init__()`` is
    optional: the server connects every handler it makes.
    """

    _channel: _Channel | None = None

    def __init__(self, **params: Any) -> None:
        self.params = params

    def execute(self) -> dict[str, Any]:
        """Carry out the command and return the reply map."""
        raise TypeError(f"{type(self).__name__} must define execute()")

    def success(self, **kwargs: Any) -> dict[str, Any]:
        """``{"success": True, **kwargs}``."""
        return {"success": True, **kwargs}

    def error(self, message: str, **kwargs: Any) -> dict[str, Any]:
        """``{"error": True, "message": message, **kwargs}``."""
        return {"error": True, "message": message, **kwargs}

    def send(self, data: Any) -> None:
        """Send ``data`` (a dict) to the client now, before the reply."""
        self._connected().send(data)

    def recv(self) -> Any:
        """Wait for the client's next message and return it."""
        return self._connected().recv()

    def _connected(self) -> _Channel:
        if self._channel is None:
            raise RuntimeError("this handler is not running on a TCPServer connection")
        return self._channel


# --- the client ----------------------------------------------------------------------


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
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = DEFAULT_PORT,
        *,
        timeout: float | None = 30.0,
        limits: Limits | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.timeout = timeout
        self.limits = limits or DEFAULT_LIMITS
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
            self._sock = connect(self.host, self.port, self.timeout, _WHAT)
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
