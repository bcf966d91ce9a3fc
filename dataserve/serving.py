"""Seed 001's ``run_http_server``: serve a handler until Ctrl-C or SIGTERM.

The top floor of the HTTP side: it binds, prints the banner, and runs the app
(``dataserve.http``) under uvicorn in this process, or hands it to worker
processes (``dataserve.workers``). With ``tcp_port`` it also serves the
same handler over rawproto's native TCP framing, so this module (with the
CLI) is the one place where ``dataserve`` and ``rawproto`` meet.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from .core.endpoint import Endpoint, resolve_endpoint
from .core.handler import resolve_handler
from .core.limits import DEFAULT_LIMITS, Limits
from .core.loading import load_handler
from .core.metrics import prepare_multiprocess
from .core.net import DEFAULT_HOST, bind_socket, bind_unix
from .core.running import exit_quietly_on_signals
from .core.security import TLSConfig, token_from_env
from .http.app import create_app
from .http.server import SignalledServer, default_banner, server_url, uvicorn_config
from .ops.config import DEFAULT_OPS, OpsConfig
from .ops.logs import log_config as dataserve_log_config
from .workers import FACTORY, hand_off

__all__ = ["run_http_server"]

logger = logging.getLogger("dataserve.server")


def run_http_server(
    port: int | None = None,
    data_handler: Any = None,
    *,
    host: str = DEFAULT_HOST,
    limits: Limits | None = None,
    handler_threads: int | None = None,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
    banner: Callable[[str], None] | None = None,
    ops: OpsConfig | None = None,
    token: str | None = None,
    tls: TLSConfig | None = None,
    tcp_port: int | None = None,
    root_path: str = "",
    proxy_headers: bool = True,
    forwarded_allow_ips: str | None = None,
    log_config: str | None = None,
    reload: bool = False,
    uds: str | None = None,
    endpoint: Endpoint | None = None,
) -> None:
    """Serve ``data_handler`` over HTTP on ``host:port`` until Ctrl-C or SIGTERM.

    ``data_handler`` is an ``HTTPDataHandler`` subclass (as in seed 001), an
    instance, a ``Router`` or a ``MODULE:ATTR`` string. The default host is
    loopback; pass ``host="0.0.0.0"`` to serve other machines. In-flight
    requests finish before this returns (up to ``limits.shutdown_timeout``).
    ``ops`` sets the health/ready/metrics routes, request ids and logs
    (``dataserve.ops.OpsConfig``); ``access_log=True`` turns its access log on.
    ``token`` (default: ``$DATASERVE_TOKEN``) requires ``Authorization: Bearer``
    on every request; ``tls`` serves HTTPS (``TLSConfig(cert, key, client_ca)``).
    ``tcp_port`` also serves the same handler instance, with the same
    handler threads, token, TLS and metrics, over rawproto's native TCP
    framing: on the same loop, or in each worker (``SO_REUSEPORT``).

    As with uvicorn: ``root_path`` is the prefix a proxy mounts the server
    under; ``proxy_headers`` trusts ``X-Forwarded-For``/``-Proto`` from
    ``forwarded_allow_ips`` (default ``$FORWARDED_ALLOW_IPS``, else
    127.0.0.1); ``log_config`` is a logging config file (``.json``,
    ``.yaml``, ``.ini``) used instead of dataserve's; ``reload=True`` restarts
    the server when a Python file under the working directory changes (for
    development; the handler must be importable by name); ``uds`` listens on
    that Unix domain socket instead of ``host:port`` (for clients on the same
    host: ``HTTPDataClient(uds=...)``, ``curl --unix-socket``).

    ``endpoint=Endpoint(host, port, uds=..., tls=..., token=...)`` gives where
    to listen and what to ask of clients as one value, instead of ``port``,
    ``host``, ``uds``, ``tls`` and ``token`` (giving both is a ``TypeError``):
    ``run_http_server(data_handler=handler, endpoint=endpoint)``.
    """
    if data_handler is None:
        raise TypeError("run_http_server() needs a data handler")
    if endpoint is None and port is None:
        raise TypeError("run_http_server() needs a port (0 picks a free one) or endpoint=")
    endpoint = resolve_endpoint(endpoint, host=host, port=port, uds=uds, tls=tls, token=token)
    host, port, tls = endpoint.host, endpoint.port, endpoint.tls
    uds = None if endpoint.uds is None else os.fspath(endpoint.uds)
    token = token_from_env(endpoint.token)
    # Workers and the reloader's child both build their app in another process.
    elsewhere = workers > 1 or reload
    tcp_sock = None
    if tcp_port is not None:
        # In another process this only reserves the port: each one listens on it.
        tcp_sock = bind_socket(host, tcp_port, reuse_port=elsewhere, listen=not elsewhere)
    limits = limits or DEFAULT_LIMITS
    if handler_threads is not None:
        limits = limits.replace(handler_threads=handler_threads)
    ops = ops or DEFAULT_OPS
    if access_log:
        ops = ops.replace(access_log=True)
    # dataserve's access lines replace uvicorn's; the config applies in each worker.
    logging_kwargs: dict[str, Any] = {
        "log_level": log_level,
        "access_log": False,
        "log_config": log_config or dataserve_log_config(ops.log_format, log_level),
        "root_path": root_path,
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": forwarded_allow_ips,
    }
    sock = bind_unix(uds) if uds else bind_socket(host, port, reuse_port=elsewhere)
    url = server_url(sock, tls is not None)
    (banner or functools.partial(default_banner, log_format=ops.log_format))(url)
    # What the console shows as the listeners: ("http", url), ("native", tcp://...).
    listeners = [("http", url)]
    if tcp_sock is not None:
        tcp_host, tcp_bound = tcp_sock.getsockname()[:2]
        (banner or functools.partial(default_banner, log_format=ops.log_format))(
            f"tcp://{tcp_host}:{tcp_bound}"
        )
        listeners.append(("native", f"tcp://{tcp_host}:{tcp_bound}"))
    try:
        if elsewhere:
            _run_elsewhere(
                data_handler, limits, ops, token, tls, workers, reload, listeners,
                sock, tcp_sock, host, logging_kwargs,
            )  # fmt: skip
            return
        if isinstance(data_handler, str):
            data_handler = load_handler(data_handler)
        if tcp_sock is not None:
            data_handler = resolve_handler(data_handler)  # one instance for both transports
        app = create_app(data_handler, limits=limits, ops=ops, token=token)
        if app.console is not None:
            app.console.serving(1, listeners)
        config = uvicorn_config(app, limits, tls=tls, **logging_kwargs)
        server = (
            SignalledServer(config)
            if tcp_sock is None
            else _WithNative(config, tcp_sock, data_handler, app, token, tls)
        )
        server.run(sockets=[sock])  # until Ctrl-C or SIGTERM, then drains
    finally:
        sock.close()
        if tcp_sock is not None:
            tcp_sock.close()
        if uds:
            with contextlib.suppress(OSError):
                os.unlink(uds)


def _run_elsewhere(
    data_handler: Any,
    limits: Limits,
    ops: OpsConfig,
    token: str | None,
    tls: TLSConfig | None,
    workers: int,
    reload: bool,
    listeners: list[tuple[str, str]],
    sock: socket.socket,
    tcp_sock: socket.socket | None,
    host: str,
    logging_kwargs: dict[str, Any],
) -> None:
    """Serve from worker processes (or the reloader's child): they import the app by name."""
    native = None if tcp_sock is None else (host, tcp_sock.getsockname()[1], tls)
    hand_off(data_handler, limits, ops, token, native, (workers, listeners))
    # Before the workers start: each writes its metrics to a shared directory.
    clean_up = prepare_multiprocess() if ops.metrics else _nothing
    config = uvicorn_config(
        FACTORY,
        limits,
        tls=tls,
        ops=ops,
        factory=True,
        workers=workers,
        reload=reload,
        **logging_kwargs,
    )
    from uvicorn.supervisors import ChangeReload, Multiprocess

    supervisor: Any = ChangeReload if reload else Multiprocess
    # uvicorn < 0.36 takes the worker's target; later ones build it.
    extra: dict[str, Any] = {}
    if reload or "target" in inspect.signature(Multiprocess).parameters:
        extra["target"] = SignalledServer(config).run
    try:
        # The supervisor catches the signals once it runs; before and after, they end it quietly.
        with exit_quietly_on_signals():
            supervisor(config, sockets=[sock], **extra).run()
    finally:
        clean_up()


class _WithNative(SignalledServer):
    """uvicorn that also serves the app's handler over rawproto's native TCP framing.

    Both listeners share the loop, the handler and its thread pool; at
    shutdown the TCP side drains first, then uvicorn's (whose lifespan closes
    the pool).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        tcp_sock: socket.socket,
        handler: Any,
        app: Any,
        token: str | None,
        tls: TLSConfig | None,
    ) -> None:
        super().__init__(config)
        self._tcp = (tcp_sock, handler, app, token, tls)
        self._native: Any = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        from rawproto.server import start_server  # only when serving TCP too

        await super().startup(sockets=sockets)
        tcp_sock, handler, app, token, tls = self._tcp
        self._native = await start_server(
            handler,
            sock=tcp_sock,
            limits=app.limits,
            dispatcher=app.endpoint.dispatcher,
            token=token or "",  # "": none, even if $DATASERVE_TOKEN is set
            tls=tls,
            metrics=app.ops.metrics,
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._native is not None:
            await self._native.stop()
        await super().shutdown(sockets=sockets)


def _nothing() -> None:
    return None
