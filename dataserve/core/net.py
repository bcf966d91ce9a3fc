"""Listening sockets, bound the same way for every listener.

The HTTP server and the raw TCP engine both bind here, before their event
loop starts, so a caller can read the real port back (port 0 picks a free
one) and report "address in use" as one clear error. ``bind_unix_socket``
does the same for a Unix domain socket (same host, no TCP/IP stack).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import stat

__all__ = ["bind_socket", "bind_unix_socket", "is_loopback", "remove_unix_socket"]

#: Connections the kernel queues before they are accepted.
BACKLOG = 2048


def bind_socket(
    host: str, port: int, *, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A TCP socket bound to ``(host, port)``, listening unless ``listen=False``.

    ``reuse_port=True`` sets ``SO_REUSEPORT``, so that several processes can
    each listen on the same port and the kernel spreads connections among
    them. A socket bound with ``listen=False`` receives no connections: it
    only keeps the port reserved for such processes.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted
    # sockets only when it sees that, and without it every reply written in
    # two parts waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise OSError("SO_REUSEPORT is not available on this platform")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def bind_unix_socket(path: str | os.PathLike[str], *, listen: bool = True) -> socket.socket:
    """A Unix domain stream socket bound to ``path``, listening unless ``listen=False``.

    A socket file left at ``path`` by a server that is gone (nothing accepts
    on it) is replaced; one a live server listens on is ``EADDRINUSE``, and
    any other file there is left alone (``bind`` fails). The socket file gets
    the process's umask, as any file it creates; ``remove_unix_socket``
    removes it once the server stops.
    """
    path = os.fspath(path)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            if _in_use(path):
                raise OSError(errno.EADDRINUSE, f"a server already listens on {path}")
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False  # refused: a stale file, nobody accepts on it
    finally:
        probe.close()
    return True


def remove_unix_socket(path: str | os.PathLike[str]) -> None:
    """Remove the socket file a server bound at ``path`` (nothing if it is gone)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)


def is_loopback(host: str) -> bool:
    """Does binding ``host`` serve this machine only?

    ``localhost`` and loopback addresses do; ``0.0.0.0``, ``::``, ``""``,
    other addresses and any other name (which may resolve anywhere) do not.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
