"""Listening sockets, bound the same way for every listener.

The HTTP server and the raw TCP engine both bind here, before their event
loop starts, so a caller can read the real port back (port 0 picks a free
one) and report "address in use" as one clear error.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import stat
from typing import Any

__all__ = [
    "BACKLOG",
    "CLIENT_TIMEOUT",
    "CONNECT_TIMEOUT",
    "DEFAULT_HOST",
    "FACADE_CLIENT_TIMEOUT",
    "POOL_TIMEOUT",
    "UNPACED",
    "bind_socket",
    "bind_unix",
    "is_loopback",
    "loopback_socket_options",
    "remove_unix_socket",
    "unpace",
    "unpace_loopback",
]

#: Where servers listen unless told otherwise: this machine only. Serving
#: other machines (``0.0.0.0``, ``::``) is always an explicit choice.
DEFAULT_HOST = "127.0.0.1"

#: Connections the kernel queues before they are accepted, on every listener
#: (HTTP and raw TCP alike). uvicorn's default, which its ``Config.backlog``
#: gets too, so a listener is not listened on twice with two numbers; 2048
#: absorbs a burst of a few thousand connects, and Linux caps it at
#: ``net.core.somaxconn`` (4096 since 5.4) anyway.
BACKLOG = 2048

#: Seconds a client waits for an answer: handlers may be slow and payloads large.
CLIENT_TIMEOUT = 300.0
#: Seconds a client waits for its TCP connection.
CONNECT_TIMEOUT = 10.0
#: Seconds an HTTP client waits for a free connection of its pool.
POOL_TIMEOUT = 30.0
#: Seconds the seed facades' blocking clients (tcpy, pyts) wait on their socket.
FACADE_CLIENT_TIMEOUT = 30.0


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
        if is_loopback(host):
            unpace(sock)  # the connections it accepts inherit it
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def bind_unix(path: str, *, listen: bool = True) -> socket.socket:
    """A Unix domain socket bound to ``path``, listening unless ``listen=False``.

    A socket file left at ``path`` by a server that is gone is replaced; any
    other file there is an error (``FileExistsError``), never removed.
    """
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
        else:
            raise FileExistsError(f"{path} exists and is not a socket")
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def remove_unix_socket(path: str | os.PathLike[str]) -> None:
    """Remove the socket file a server bound at ``path`` (nothing if it is gone)."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


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


# --- Congestion control on loopback ------------------------------------------
#
# Nothing is congested on loopback, but a congestion control that paces
# (Linux's BBR, the default on many hosts) still spreads a connection's sends
# over time at its estimate of the path's bandwidth, and on loopback that
# estimate is noisy and low: a 1 MiB answer written in one call was paced
# over about 200 us where an unpaced one takes 60. Loopback connections, on
# a listener bound to a loopback address and from our clients to a loopback
# peer, switch such a congestion control to reno, which every Linux kernel
# has and by default lets any user pick (``net.ipv4.tcp_allowed_congestion_control``);
# a congestion control that does not pace (cubic, reno) is left as it is.

_CONGESTION = getattr(socket, "TCP_CONGESTION", None)
#: What loopback connections use instead of a congestion control that paces.
UNPACED = b"reno"


def _paces(name: bytes) -> bool:
    return name.rstrip(b"\0").startswith(b"bbr")


def unpace(sock: Any) -> bool:
    """Switch ``sock`` (TCP) from a congestion control that paces to reno.

    Returns whether it did; any refusal (another platform, a kernel without
    reno allowed) leaves the socket as it was.
    """
    if _CONGESTION is None:
        return False
    try:
        if not _paces(sock.getsockopt(socket.IPPROTO_TCP, _CONGESTION, 16)):
            return False
        sock.setsockopt(socket.IPPROTO_TCP, _CONGESTION, UNPACED)
    except (OSError, ValueError):  # ValueError: uvloop's view of a closed socket
        return False
    return True


def unpace_loopback(sock: Any) -> bool:
    """``unpace(sock)`` if ``sock`` is a TCP connection to this machine."""
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        peer = sock.getpeername()[0]
    except (OSError, ValueError):
        return False
    return is_loopback(peer) and unpace(sock)


@functools.cache
def loopback_socket_options() -> tuple[tuple[int, int, bytes], ...]:
    """Socket options for a TCP connection to this machine, set before it connects
    (``httpx.HTTPTransport(socket_options=...)``): reno, if this host's
    default congestion control paces; none otherwise."""
    if _CONGESTION is None:
        return ()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if not unpace(probe):
                return ()
    except OSError:
        return ()
    return ((socket.IPPROTO_TCP, _CONGESTION, UNPACED),)
