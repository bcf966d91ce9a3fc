"""Blocking-socket helpers shared by the thread-style clients (tcpy, pyts).

They open a TCP connection and translate ``OSError`` at the boundary into the
``dataserve.core.errors`` tree, each message naming the server's address.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

from dataserve.core import errors

__all__ = ["connect", "translate_errors"]


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


@contextlib.contextmanager
def translate_errors(host: str, port: int, timeout: float | None, what: str) -> Iterator[None]:
    """Turn socket failures inside the block into ``TimeoutError``/``ConnectionClosed``."""
    try:
        yield
    except TimeoutError:  # socket.timeout
        raise errors.TimeoutError(
            f"no answer from the {what} at {host}:{port} within {timeout} s"
        ) from None
    except OSError as exc:
        raise errors.ConnectionClosed(
            f"connection to the {what} at {host}:{port} lost: {exc.strerror or exc}"
        ) from exc
