"""Starting a native-framing server: blocking, as a coroutine, or in the background.

``serve(handler, port)`` blocks until Ctrl-C or SIGTERM, then shuts down
gracefully. ``await start_server(handler)`` returns a started ``RawServer`` on
the running loop. ``BackgroundRawServer(handler).start()`` runs one on a
shared background loop thread and returns once it accepts connections (for
programs that do other things, and for tests).

Each takes ``token`` (clients must present it; default ``$DATASERVE_TOKEN``,
``token=""`` for none even when that is set), ``tls`` (a
``dataserve.core.security.TLSConfig``), ``metrics`` (record requests and
connections in ``dataserve.ops``' Prometheus metrics, as transport
``"native"``) and ``uds`` (listen on a Unix domain socket at that path
instead of TCP: for clients on the same host, with no TCP/IP stack between;
clients connect with ``RawDataClient(uds=PATH)``). Each also takes
``endpoint=Endpoint(host, port, uds=..., tls=..., token=...)``
(``dataserve.core.endpoint``) instead of those five keywords; giving both is
a ``TypeError``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any

from dataserve.core.codec import CodecRegistry
from dataserve.core.dispatch import Dispatcher
from dataserve.core.endpoint import Endpoint, resolve_endpoint
from dataserve.core.exchange import Exchange
from dataserve.core.handler import Caller
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.net import DEFAULT_HOST
from dataserve.core.running import START_TIMEOUT, LoopThread, serve_until_signalled
from dataserve.core.security import TLSConfig, token_from_env

from ..engine import RawServer
from .service import NativeService

__all__ = ["BackgroundRawServer", "serve", "start_server"]


def _limits(limits: Limits | None, handler_threads: int | None) -> Limits:
    limits = limits or DEFAULT_LIMITS
    if handler_threads is not None:
        limits = limits.replace(handler_threads=handler_threads)
    return limits


def _load(handler: Any) -> Any:
    if isinstance(handler, str):
        from dataserve.core.loading import load_handler

        return load_handler(handler)
    return handler


async def start_server(
    data_handler: Any = None,
    port: int = 0,
    *,
    host: str = DEFAULT_HOST,
    limits: Limits | None = None,
    handler_threads: int | None = None,
    codecs: CodecRegistry | None = None,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    caller: Caller | None = None,
    dispatcher: Dispatcher | None = None,
    token: str | None = None,
    tls: TLSConfig | None = None,
    metrics: bool = False,
    uds: str | os.PathLike[str] | None = None,
    exchange: Exchange | None = None,
    endpoint: Endpoint | None = None,
) -> RawServer:
    """Serve ``data_handler`` over the native framing on the running loop.

    Returns the started ``RawServer`` (``server.port`` is the bound port, so
    ``port=0`` picks a free one); ``await server.stop()`` shuts it down.
    ``exchange`` (an HTTP endpoint's), ``caller`` or ``dispatcher`` share an
    already prepared handler (see ``NativeService``). ``token``, ``tls``,
    ``metrics``, ``uds``, ``endpoint``: see the module docstring.
    """
    where = resolve_endpoint(endpoint, host=host, port=port or None, uds=uds, tls=tls, token=token)
    limits = _limits(limits, handler_threads)
    recorder = None
    if metrics:
        from dataserve.core.metrics import transport_metrics

        recorder = transport_metrics("native")
    service = NativeService(
        _load(data_handler) if exchange is None else None,
        caller=caller,
        exchange=exchange,
        limits=limits,
        codecs=codecs,
        dispatcher=dispatcher,
        token=token_from_env(where.token),
        metrics=recorder,
    )
    server = RawServer(
        service,
        host=where.host,
        port=where.port,
        limits=limits,
        sock=sock,
        reuse_port=reuse_port,
        tls=where.tls,
        connection_metrics=recorder,
        uds=where.uds,
    )
    return await server.start()


def serve(
    data_handler: Any,
    port: int | None = None,
    *,
    host: str = DEFAULT_HOST,
    limits: Limits | None = None,
    handler_threads: int | None = None,
    codecs: CodecRegistry | None = None,
    reuse_port: bool = False,
    banner: Callable[[str], None] | None = None,
    token: str | None = None,
    tls: TLSConfig | None = None,
    metrics: bool = False,
    uds: str | os.PathLike[str] | None = None,
    endpoint: Endpoint | None = None,
) -> None:
    """Serve ``data_handler`` over the native framing until Ctrl-C or SIGTERM.

    ``data_handler`` is what ``run_http_server`` takes: an ``HTTPDataHandler``
    subclass or instance, a ``Router``, a callable or a ``MODULE:ATTR``
    string. Binds loopback by default. Requests in flight finish before this
    returns (up to ``limits.shutdown_timeout``; then they are answered 503).
    ``token`` (default ``$DATASERVE_TOKEN``) is required of every client;
    ``tls`` serves TLS; ``uds`` listens on that Unix socket path instead of TCP.
    ``endpoint=Endpoint(host, port, uds=..., tls=..., token=...)`` gives those
    as one value instead of ``port``, ``host``, ``uds``, ``tls`` and ``token``
    (giving both is a ``TypeError``): ``serve(handler, endpoint=endpoint)``.
    """
    if endpoint is None and port is None:
        raise TypeError("serve() needs a port (0 picks a free one) or endpoint=")
    where = resolve_endpoint(endpoint, host=host, port=port, uds=uds, tls=tls, token=token)

    async def main(stop: asyncio.Event) -> None:
        server = await start_server(
            data_handler,
            where.port,
            host=where.host,
            limits=limits,
            handler_threads=handler_threads,
            codecs=codecs,
            reuse_port=reuse_port,
            token=where.token,
            tls=where.tls,
            metrics=metrics,
            uds=where.uds,
        )
        try:
            if where.uds is not None:
                url = where.where
            else:
                url = f"tcp://{where.replace(port=server.port).where}"
            (banner or _default_banner)(url)
            await stop.wait()
        finally:
            await server.stop()

    serve_until_signalled(main)


def _default_banner(url: str) -> None:
    print(f"Serving data on {url} (rawproto native). Press Ctrl-C to stop.", flush=True)


class BackgroundRawServer:
    """A native-framing server on the shared background loop thread.

    ``start()`` returns once the port (or ``uds``, a Unix socket path) accepts
    connections (``port`` is then the bound port); ``stop()`` shuts down
    gracefully. ``endpoint=Endpoint(...)`` may replace ``host``, ``port``,
    ``uds``, ``tls`` and ``token``. A context manager.
    """

    def __init__(
        self,
        data_handler: Any,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        limits: Limits | None = None,
        handler_threads: int | None = None,
        codecs: CodecRegistry | None = None,
        reuse_port: bool = False,
        token: str | None = None,
        tls: TLSConfig | None = None,
        metrics: bool = False,
        uds: str | os.PathLike[str] | None = None,
        endpoint: Endpoint | None = None,
    ) -> None:
        where = resolve_endpoint(
            endpoint, host=host, port=port or None, uds=uds, tls=tls, token=token
        )
        self.data_handler = data_handler
        self.uds = where.uds
        self.host = where.host
        self.requested_port = where.port
        self.limits = _limits(limits, handler_threads)
        self.codecs = codecs
        self.reuse_port = reuse_port
        self.token = where.token
        self.tls = where.tls
        self.metrics = metrics
        self.server: RawServer | None = None
        self._loop = LoopThread.shared()
        self.port = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> BackgroundRawServer:
        self.server = self._loop.run(
            start_server(
                self.data_handler,
                self.requested_port,
                host=self.host,
                limits=self.limits,
                codecs=self.codecs,
                reuse_port=self.reuse_port,
                token=self.token,
                tls=self.tls,
                metrics=self.metrics,
                uds=self.uds,
            ),
            timeout=START_TIMEOUT,
        )
        self.port = self.server.port
        return self

    def stop(self, timeout: float | None = None) -> None:
        server, self.server = self.server, None
        if server is not None:
            wait = None if timeout is None else timeout + 5
            self._loop.run(server.stop(timeout), timeout=wait)

    def __enter__(self) -> BackgroundRawServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
