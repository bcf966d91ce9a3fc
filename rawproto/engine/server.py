"""``RawServer`` and ``open_connection``: where connections come from.

A ``RawServer`` listens (TCP or a Unix domain socket, optionally TLS,
``SO_REUSEPORT`` on request),
makes a ``Connection`` per accepted socket (a ``OneShot`` for a service
that answers one document per connection, ``rawproto.engine.oneshot``) and
keeps them in a ``Registry`` (``rawproto.engine.registry``); ``stop()``
runs the graceful shutdown (see ``rawproto.engine``). ``open_connection``
runs a session on one outgoing connection with the same machinery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any, cast

from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.net import (
    BACKLOG,
    DEFAULT_HOST,
    bind_unix,
    remove_unix_socket,
    unpace_loopback,
)
from dataserve.core.net import bind_socket as bind_socket
from dataserve.core.security import TLSConfig

from .connection import Connection
from .deadlines import LINGER_SECONDS
from .oneshot import OneShot, OneShotService, is_one_shot
from .registry import Registry
from .session import ConnectionCounter, Service, SessionFactory

__all__ = ["RawServer", "Served", "bind_socket", "open_connection"]

#: What a ``RawServer`` serves: a ``Service`` of sessions, or a ``OneShotService``.
Served = Service | OneShotService

logger = logging.getLogger("rawproto.engine")


class RawServer:
    """An asyncio TCP server running ``service`` on the engine.

    ``await start()`` binds (port 0 picks a free port: read ``port`` back) and
    returns once connections are accepted; ``await stop()`` shuts down
    gracefully (see the module docstring). ``sock`` serves an already bound
    listening socket instead. Usable as ``async with RawServer(...) as s``.

    ``tls`` serves TLS (``TLSConfig(cert, key, client_ca)``; with
    ``client_ca`` every client must present a certificate signed by it); the
    TLS handshake must complete within ``limits.handshake_timeout``.
    ``connection_metrics`` is told of every connection opened and closed
    (``dataserve.ops.transport_metrics(name)``). ``uds`` listens on a Unix
    domain socket at that path instead of TCP (``host`` and ``port`` unused;
    a socket file already there is replaced, any other file is an error, and
    the file is removed when the server stops).
    """

    def __init__(
        self,
        service: Served,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        limits: Limits | None = None,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        max_connections: int | None = None,
        tls: TLSConfig | None = None,
        connection_metrics: ConnectionCounter | None = None,
        uds: str | os.PathLike[str] | None = None,
    ) -> None:
        self.service = service
        self.uds = os.fspath(uds) if uds is not None else None
        self.host = host
        self.requested_port = port
        self.limits = limits or DEFAULT_LIMITS
        self.reuse_port = reuse_port
        self.tls = tls
        self.connection_metrics = connection_metrics
        self.max_connections = (
            self.limits.max_connections if max_connections is None else max_connections
        )
        self._sock = sock
        self._server: asyncio.base_events.Server | None = None
        self._registry: Registry | None = None
        self._stopped: asyncio.Event | None = None
        self.port = 0

    @property
    def connections(self) -> int:
        """How many connections are open now."""
        return len(self._registry.connections) if self._registry else 0

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def start(self) -> RawServer:
        if self._server is not None:
            raise RuntimeError("the server is already started")
        # Built first: a certificate that does not load fails before binding.
        context = self.tls.server_context() if self.tls is not None else None
        if self._sock is not None:
            sock = self._sock
        elif self.uds is not None:
            sock = bind_unix(self.uds)
        else:
            sock = bind_socket(self.host, self.requested_port, reuse_port=self.reuse_port)
        unix = sock.family == socket.AF_UNIX
        self.port = 0 if unix else sock.getsockname()[1]
        self._registry = Registry(self.limits, self.max_connections, self.connection_metrics)
        self._stopped = asyncio.Event()
        registry, service = self._registry, self.service
        protocol: Callable[[], asyncio.BaseProtocol]
        if is_one_shot(service):
            one_shot = cast(OneShotService, service)
            protocol = lambda: OneShot(one_shot, registry)  # noqa: E731
        else:
            factory = cast(Service, service).session
            protocol = lambda: Connection(factory, registry)  # noqa: E731
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if context is not None:
            tls = {"ssl": context, "ssl_handshake_timeout": self.limits.handshake_timeout}
        create = loop.create_unix_server if unix else loop.create_server
        try:
            self._server = await create(protocol, sock=sock, backlog=BACKLOG, **tls)
        except BaseException:
            if self._sock is None:
                sock.close()
                if self.uds is not None:
                    remove_unix_socket(self.uds)
            raise
        return self

    async def serve_forever(self) -> None:
        """Wait until ``stop()`` has completed."""
        if self._stopped is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let requests in flight finish, close every connection.

        When ``timeout`` (default ``limits.shutdown_timeout``) ends with
        requests still in flight, each session answers them
        (``session.abandoned()``: the native framing's 503 error frame) and
        its connection closes; what is still open ``LINGER_SECONDS`` later
        is aborted. Then ``service.aclose()``.
        """
        server, registry = self._server, self._registry
        if server is None or registry is None:
            return
        self._server = None
        timeout = self.limits.shutdown_timeout if timeout is None else timeout
        server.close()
        registry.closing = True
        registry.all_closed = asyncio.Event()
        for conn in list(registry.connections):
            conn._begin_shutdown()
        registry.removed()
        try:
            await asyncio.wait_for(registry.all_closed.wait(), timeout)
        except asyncio.TimeoutError:
            left = list(registry.connections)
            logger.warning(
                "shutdown grace period of %g s over: closing %d connections with requests "
                "in flight",
                timeout,
                len(left),
            )
            for conn in left:
                conn._abandon()
            try:
                await asyncio.wait_for(registry.all_closed.wait(), LINGER_SECONDS)
            except asyncio.TimeoutError:
                for conn in list(registry.connections):
                    conn.abort()
        with contextlib.suppress(Exception):
            await server.wait_closed()
        if self.uds is not None and self._sock is None:
            remove_unix_socket(self.uds)
        try:
            await self.service.aclose()
        finally:
            assert self._stopped is not None
            self._stopped.set()

    async def __aenter__(self) -> RawServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def open_connection(
    factory: SessionFactory,
    host: str,
    port: int,
    *,
    limits: Limits | None = None,
    timeout: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    uds: str | os.PathLike[str] | None = None,
) -> Connection:
    """Connect to ``host:port`` (or the Unix socket at ``uds``) and run
    ``factory(conn)``'s session on it.

    Returns once the TCP connection (and, with ``ssl_context``, the TLS
    handshake) is up and the session's ``opened()`` has sent its opening
    bytes; ``conn.closed_future`` completes when it closes. Raises
    ``OSError`` (``ConnectionRefusedError``, ``ssl.SSLError``...) or
    ``asyncio.TimeoutError`` as ``loop.create_connection`` does.
    """
    loop = asyncio.get_running_loop()
    registry = Registry(limits or DEFAULT_LIMITS)
    tls: dict[str, Any] = {}
    if ssl_context is not None:
        tls = {"ssl": ssl_context, "server_hostname": host}
    if uds is not None:
        connect = loop.create_unix_connection(
            lambda: Connection(factory, registry), os.fspath(uds), **tls
        )
    else:
        connect = loop.create_connection(lambda: Connection(factory, registry), host, port, **tls)
    if timeout is not None:
        _, conn = await asyncio.wait_for(connect, timeout)
    else:
        _, conn = await connect
    if uds is None and conn.transport is not None:
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            unpace_loopback(sock)
    return conn
