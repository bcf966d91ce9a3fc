"""One blocking connection from ``RawDataClient`` to a native server.

``Link`` owns the socket's life: opening it (TCP or a Unix socket, TLS when
asked) and sending the preface and token; finding out between calls whether
the server closed it or said something meanwhile, so that a fresh one is
opened instead of failing the next request; sending a frame header and a
payload piece without copying them; closing it; and turning ``OSError`` into
the core's exceptions. What one call sends and reads over it is
``rawproto.native.call``.
"""

from __future__ import annotations

import select
import socket
import ssl
from typing import Any, NoReturn

from dataserve.core import errors
from dataserve.core.errors import ConnectionClosed

from .._blocking import connect, set_timeout
from ..engine.connection import UNIX_SNDBUF
from ..proto.native import Preface
from .exchange import ClientSettings, Exchange

__all__ = ["READ_SIZE", "Link", "readable"]

_WHAT = "rawproto server"

#: What one read asks of the socket.
READ_SIZE = 256 * 1024


class Link:
    """The blocking client's connection: opened on first use, reopened after
    the server closed it, with the ``Exchange`` that speaks on it."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self.sock: socket.socket | None = None
        self.exchange: Exchange | None = None
        #: True when ``sock`` speaks TLS (no ``sendmsg``, no ``recv`` flags).
        self.tls = False
        self._poller = select.poll()
        #: The buffer ordinary reads go into, kept across calls.
        self.view = memoryview(bytearray(READ_SIZE))

    def open(self) -> tuple[socket.socket, Exchange]:
        """The connection to use for the next call: the open one unless the
        server closed it or said something meanwhile, else a fresh one."""
        sock, exchange = self.sock, self.exchange
        if sock is not None and exchange is not None:
            if not self._stale(sock, exchange):
                return sock, exchange
            self.close()
        settings = self._settings
        sock = self._connect()
        set_timeout(sock, settings.timeout)
        exchange = Exchange(
            settings.address, settings.codecs, settings.max_frame_size, settings.token
        )
        try:
            sock.sendall(exchange.opening())
        except OSError as exc:
            sock.close()
            self.error(exc)
        except BaseException:
            sock.close()
            raise
        self.sock, self.exchange = sock, exchange
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self.tls = isinstance(sock, ssl.SSLSocket)
        return sock, exchange

    def _connect(self) -> socket.socket:
        settings = self._settings
        if settings.uds is None:
            return connect(
                settings.host,
                settings.port,
                settings.connect_timeout,
                _WHAT,
                settings.ssl_context,
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UNIX_SNDBUF)
            sock.settimeout(settings.connect_timeout)
            sock.connect(settings.uds)
            if settings.ssl_context is not None:
                return settings.ssl_context.wrap_socket(sock, server_hostname=settings.host)
        except OSError as exc:
            sock.close()
            raise errors.ConnectError(
                f"cannot connect to the {_WHAT} at {settings.address}: {exc.strerror or exc}"
            ) from exc
        return sock

    def error(self, exc: OSError) -> NoReturn:
        """Raise the core's exception for a socket error during a call."""
        settings = self._settings
        # BlockingIOError: the kernel's timeout on a blocking socket (set_timeout).
        if isinstance(exc, (TimeoutError, BlockingIOError)):
            raise errors.TimeoutError(
                f"no answer from the {_WHAT} at {settings.address} within {settings.timeout} s"
            ) from None
        raise errors.ConnectionClosed(
            f"connection to the {_WHAT} at {settings.address} lost: {exc.strerror or exc}"
        ) from exc

    def _stale(self, sock: socket.socket, exchange: Exchange) -> bool:
        """Did the server close (or say something) while we were not asking?

        Between calls the server sends nothing but its preface, or an ERROR
        about the connection (idle timeout, shutdown, a refused token) before
        closing it. What arrived is read into the exchange; anything but the
        preface means a fresh connection is used instead of failing the next
        request.
        """
        tls = self.tls
        if not (self._poller.poll(0) or (tls and sock.pending())):  # type: ignore[attr-defined]
            return False
        try:
            if tls:  # no recv flags with TLS
                timeout = sock.gettimeout()
                sock.setblocking(False)
                try:
                    data = sock.recv(READ_SIZE)
                finally:
                    sock.settimeout(timeout)
            else:
                data = sock.recv(READ_SIZE, socket.MSG_DONTWAIT)
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

    def send(self, sock: socket.socket, head: bytes, piece: Any) -> None:
        """``head`` then ``piece``, neither copied (``sendmsg`` gathers them)."""
        if not head:
            sock.sendall(piece)
            return
        if self.tls:  # no sendmsg on a TLS socket
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

    def close(self) -> None:
        sock, self.sock, self.exchange = self.sock, None, None
        if sock is not None:
            sock.close()


def readable(sock: socket.socket) -> bool:
    """Bytes wait to be read (in the kernel, or already decrypted by TLS)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], 0)[0])
