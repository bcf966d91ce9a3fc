"""Shared by the peer scripts (imported by path-relative import: scripts run from this folder)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable


def listen(port: int = 0, backlog: int = 2048) -> socket.socket:
    # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted sockets,
    # as on our own servers.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(backlog)
    return sock


def announce(sock: socket.socket, scheme: str = "http") -> None:
    host, port = sock.getsockname()[:2]
    print(f"{scheme}://{host}:{port}", flush=True)


def best_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def serve_protocol(factory: Callable[[], asyncio.Protocol]) -> None:
    """Serve ``factory``'s protocol on loopback TCP (uvloop when installed), forever."""

    async def main() -> None:
        sock = listen()
        server = await asyncio.get_running_loop().create_server(factory, sock=sock)
        announce(sock, "tcp")
        async with server:
            await server.serve_forever()

    if best_loop() == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main())
