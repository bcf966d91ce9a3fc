"""Running the app under uvicorn: its config, and a server in the background.

``uvicorn_config`` turns ``Limits`` into uvicorn's settings and picks the
HTTP protocol (``dataserve.http.protocol``). ``SignalledServer`` is uvicorn's
server run in the foreground by the core's ``serve_until_signalled``, as
every other runner is. ``BackgroundServer`` runs a server on the shared
loop thread (``dataserve.core.running.LoopThread``) and returns once the
port accepts connections: for embedding a server in a program that does
other things (and for tests). The blocking ``run_http_server`` of seed 001, which
may also serve native TCP and start workers, is the top floor's
(``dataserve.serving``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn

from ..core.buffer_cache import BufferCache
from ..core.limits import DEFAULT_LIMITS, Limits
from ..core.net import BACKLOG, DEFAULT_HOST, bind_socket, bind_unix
from ..core.running import (
    START_TIMEOUT,
    LoopThread,
    exit_quietly_on_signals,
    serve_until_signalled,
)
from ..core.security import TLSConfig
from ..ops.config import OpsConfig
from ..ops.logs import announce
from .connections import http_protocol
from .protocol import DataServeHttpProtocol

__all__ = [
    "BackgroundLoop",
    "BackgroundServer",
    "SignalledServer",
    "bind_socket",
    "exit_quietly_on_signals",
    "server_url",
    "uvicorn_config",
]

logger = logging.getLogger("dataserve.server")


def uvicorn_config(
    app: Any,
    limits: Limits,
    *,
    tls: TLSConfig | None = None,
    ops: OpsConfig | None = None,
    **kwargs: Any,
) -> uvicorn.Config:
    """A ``uvicorn.Config`` whose limits come from ``Limits``, access log off.

    ``ops`` is the operations config of an app given by import string (the
    workers' factory); an app object carries its own.
    """
    kwargs.setdefault("access_log", False)
    kwargs.setdefault("backlog", BACKLOG)  # uvicorn listens again on the socket it is given
    kwargs.setdefault("log_level", "info")
    kwargs.setdefault("http", DataServeHttpProtocol)
    ours = isinstance(kwargs["http"], type) and issubclass(kwargs["http"], DataServeHttpProtocol)
    if tls is not None:
        tls.server_context()  # a certificate that does not load fails here, before serving
        if not ours:  # another protocol: uvicorn's TLS, with the loop's 60 s handshake
            kwargs.update(ssl_certfile=tls.cert, ssl_keyfile=tls.key)
            if tls.client_ca:
                kwargs.update(ssl_ca_certs=tls.client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    if not isinstance(app, str):
        ops = getattr(app, "ops", None)
    # counts connections if metrics are on
    kwargs["http"] = http_protocol(kwargs["http"], ops)
    config = uvicorn.Config(
        app,
        lifespan="on",
        # uvicorn answers 503 once this many are open, counting the new one
        limit_concurrency=limits.max_connections + 1,
        timeout_keep_alive=int(limits.keepalive_timeout) or 1,
        timeout_graceful_shutdown=int(limits.shutdown_timeout) or 1,
        h11_max_incomplete_event_size=limits.max_header_size,
        server_header=False,
        **kwargs,
    )
    # What our protocol reads beyond uvicorn's own settings.
    config.dataserve_header_timeout = limits.header_timeout  # type: ignore[attr-defined]
    config.dataserve_send_timeout = limits.send_timeout  # type: ignore[attr-defined]
    config.dataserve_max_pipelined = limits.max_pipelined  # type: ignore[attr-defined]
    config.dataserve_buffer_cache = BufferCache.from_limits(limits)  # type: ignore[attr-defined]
    # TLS is the protocol's (dataserve.http.tls): uvicorn's has no handshake deadline.
    config.dataserve_tls = tls if ours else None  # type: ignore[attr-defined]
    config.dataserve_handshake_timeout = limits.handshake_timeout  # type: ignore[attr-defined]
    return config


def server_url(sock: socket.socket, tls: bool = False) -> str:
    """The URL a listening socket serves, for banners (``unix:PATH`` for a Unix socket)."""
    if sock.family == getattr(socket, "AF_UNIX", None):
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def default_banner(url: str, log_format: str = "text") -> None:
    announce(f"Serving data on {url}. Press Ctrl-C to stop.", log_format, url=url)


#: The shared loop thread, under the name the HTTP side has always used.
BackgroundLoop = LoopThread


class SignalledServer(uvicorn.Server):
    """uvicorn's server, whose Ctrl-C and SIGTERM are caught by the core's
    ``serve_until_signalled`` rather than by uvicorn itself.

    ``run()`` serves until a signal and shuts down as uvicorn does: the
    first signal stops gracefully (in-flight requests finish), a second
    Ctrl-C does not wait any more. It then returns normally, so the process
    exits 0 (uvicorn alone re-raises the signal, and SIGTERM's default
    action would end the process with -15).
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # serve_until_signalled's

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        serve_until_signalled(
            lambda stop: self.serve(sockets=sockets),
            on_signal=lambda signum: self.handle_exit(signum, None),
            loop_factory=_loop_factory(self.config),
        )


def _loop_factory(config: uvicorn.Config) -> Any:
    """The loop uvicorn would run on (``--loop``: uvloop when installed, by default)."""
    get = getattr(config, "get_loop_factory", None)
    if get is None:  # uvicorn < 0.36 sets the event loop policy instead
        config.setup_event_loop()
        return asyncio.new_event_loop
    return get() or asyncio.new_event_loop


class BackgroundServer:
    """A uvicorn server running on the shared background loop.

    ``start()`` returns once the port accepts connections; ``stop()`` lets
    in-flight requests finish and returns once the port is released. With
    ``uds=PATH`` it listens on that Unix domain socket instead.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        limits: Limits | None = None,
        log_level: str = "warning",
        uds: str | None = None,
        **config: Any,
    ) -> None:
        self.app = app
        self.host = host
        self.uds = uds
        self.requested_port = port
        self.limits: Limits = limits or getattr(app, "limits", None) or DEFAULT_LIMITS
        self._config = dict(log_level=log_level, **config)
        self._loop = BackgroundLoop.shared()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        if self.uds:
            return f"unix:{self.uds}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._config.get("tls") else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> BackgroundServer:
        if self.uds:
            sock = bind_unix(self.uds)
        else:
            sock = bind_socket(self.host, self.requested_port)
            self.port = sock.getsockname()[1]
        config = uvicorn_config(self.app, self.limits, **self._config)
        server = uvicorn.Server(config)
        self._server = server

        async def launch() -> None:
            self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
            while not server.started:
                if self._task.done():
                    self._task.result()  # raises what stopped it
                    raise RuntimeError("the server stopped before it started")
                await asyncio.sleep(0.005)  # uvicorn exposes no started event

        try:
            self._loop.run(launch(), timeout=START_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        return self

    def stop(self, timeout: float | None = None) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return

        async def shutdown() -> None:
            server.should_exit = True
            await asyncio.shield(task)

        self._loop.run(shutdown(), timeout=timeout)
        self._server = self._task = None
        if self.uds:
            with contextlib.suppress(OSError):
                os.unlink(self.uds)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
