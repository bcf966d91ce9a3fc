"""Blocking-socket helpers shared by the thread-style clients (tcpy, pyts).

They open a TCP connection and translate ``OSError`` at the boundary into the
``dataserve.core.errors`` tree, each message naming the server's address.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
from collections.abc import Iterator
from typing import NoReturn

from dataserve.core import errors
from dataserve.core.net import unpace_loopback

__all__ = ["connect", "raise_socket_error", "set_timeout", "translate_errors"]

# SO_RCVTIMEO / SO_SNDTIMEO take a struct timeval (two C longs) on POSIX.
_TIMEVAL = struct.Struct("@ll")


def connect(
    host: str,
    port: int,
    timeout: float | None,
    what: str,
    ssl_context: ssl.SSLContext | None = None,
) -> socket.socket:
    """A connected socket with ``TCP_NODELAY``, or ``ConnectError`` naming ``what``.

    With ``ssl_context`` the TLS handshake is done too (the server's
    certificate must name ``host`` unless the context does not check it).
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise errors.ConnectError(
            f"cannot connect to the {what} at {host}:{port}: {exc.strerror or exc}"
        ) from exc
    # Requests are written in one piece, but the server's reply must not
    # wait for a delayed ACK either.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    unpace_loopback(sock)
    if ssl_context is None:
        return sock
    try:
        return ssl_context.wrap_socket(sock, server_hostname=host)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        sock.close()
        reason = getattr(exc, "reason", None) or exc
        raise errors.ConnectError(
            f"TLS handshake with the {what} at {host}:{port} failed: {reason}"
        ) from exc


def set_timeout(sock: socket.socket, timeout: float | None) -> None:
    """Bound each blocking send and receive on ``sock`` by ``timeout`` seconds.

    A plain TCP socket stays in blocking mode and the kernel enforces the
    timeout (``SO_RCVTIMEO``/``SO_SNDTIMEO``: a call that waits longer fails
    with ``EAGAIN``, which ``raise_socket_error`` reports as a timeout), so a
    call costs one system call; Python's own timeout mode would ``poll``
    before each. A TLS socket, or a system without those options, gets
    ``settimeout``.
    """
    if timeout is None or isinstance(sock, ssl.SSLSocket) or sys.platform == "win32":
        sock.settimeout(timeout)
        return
    seconds = int(timeout)
    value = _TIMEVAL.pack(seconds, int((timeout - seconds) * 1e6) or (0 if seconds else 1))
    try:
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    except (OSError, OverflowError, struct.error):
        sock.settimeout(timeout)


def raise_socket_error(
    exc: OSError, host: str, port: int, timeout: float | None, what: str
) -> NoReturn:
    """Raise ``exc``, a socket failure, as ``TimeoutError`` or ``ConnectionClosed``."""
    # BlockingIOError: the kernel's timeout on a blocking socket (set_timeout).
    if isinstance(exc, (TimeoutError, BlockingIOError)):  # TimeoutError is socket.timeout
        raise errors.TimeoutError(
            f"no answer from the {what} at {host}:{port} within {timeout} s"
        ) from None
    raise errors.ConnectionClosed(
        f"connection to the {what} at {host}:{port} lost: {exc.strerror or exc}"
    ) from exc


@contextlib.contextmanager
def translate_errors(host: str, port: int, timeout: float | None, what: str) -> Iterator[None]:
    """Turn socket failures inside the block into ``TimeoutError``/``ConnectionClosed``."""
    try:
        yield
    except OSError as exc:
        raise_socket_error(exc, host, port, timeout, what)
