"""Running the app under uvicorn: in the foreground, with workers, or in the background.

``run_http_server(port, handler)`` is seed 001's blocking call: it serves
until Ctrl-C or SIGTERM and lets in-flight requests finish before it returns.
``BackgroundServer`` runs a server on a shared background event-loop thread
and returns once the port accepts connections: for embedding a server in a
program that does other things (and for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn

from ._ops.config import DEFAULT_OPS, OpsConfig, dump_ops
from ._ops.logs import announce, log_config
from .app import create_app
from .core.handler import resolve_handler
from .core.limits import DEFAULT_LIMITS, Limits
from .core.net import bind_socket
from .core.security import TOKEN_ENV, TLSConfig, token_from_env
from .loader import dump_limits, handler_spec

__all__ = ["BackgroundLoop", "BackgroundServer", "bind_socket", "run_http_server", "uvicorn_config"]

logger = logging.getLogger("dataserve.server")


def _http_impl() -> Any:
    try:
        from ._protocol import DataServeHttpProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
        return "h11"  # h11 bounds headers itself; it has no header deadline
    return DataServeHttpProtocol


def uvicorn_config(
    app: Any, limits: Limits, *, tls: TLSConfig | None = None, **kwargs: Any
) -> uvicorn.Config:
    """A ``uvicorn.Config`` whose limits come from ``Limits``, access log off."""
    if tls is not None:
        kwargs.update(ssl_certfile=tls.cert, ssl_keyfile=tls.key)
        if tls.client_ca:
            kwargs.update(ssl_ca_certs=tls.client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    kwargs.setdefault("access_log", False)
    kwargs.setdefault("log_level", "info")
    kwargs.setdefault("http", _http_impl())
    from ._ops.connections import http_protocol

    kwargs["http"] = http_protocol(kwargs["http"], app)  # counts connections if metrics are on
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
    config.dataserve_header_timeout = limits.header_timeout  # type: ignore[attr-defined]
    return config


def _url(sock: socket.socket, tls: bool = False) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def run_http_server(
    port: int,
    data_handler: Any,
    *,
    host: str = "127.0.0.1",
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
    """
    token = token_from_env(token)
    tcp_sock = None
    if tcp_port is not None:
        # With workers this only reserves the port: each worker listens on it.
        tcp_sock = bind_socket(host, tcp_port, reuse_port=workers > 1, listen=workers == 1)
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
        "log_config": log_config(ops.log_format, log_level),
    }
    sock = bind_socket(host, port, reuse_port=workers > 1)
    url = _url(sock, tls is not None)
    (banner or functools.partial(_default_banner, log_format=ops.log_format))(url)
    if tcp_sock is not None:
        tcp_host, tcp_bound = tcp_sock.getsockname()[:2]
        (banner or functools.partial(_default_banner, log_format=ops.log_format))(
            f"tcp://{tcp_host}:{tcp_bound}"
        )
    if workers > 1:
        # uvicorn's supervisor forks workers that import the app by name.
        os.environ["DATASERVE_HANDLER"] = handler_spec(data_handler)
        os.environ["DATASERVE_LIMITS"] = dump_limits(limits)
        os.environ["DATASERVE_OPS"] = dump_ops(ops)
        if token:
            os.environ[TOKEN_ENV] = token
        if tcp_sock is not None:
            from ._native import NATIVE_ENV, dump_native

            os.environ[NATIVE_ENV] = dump_native(host, tcp_sock.getsockname()[1], tls)
        from ._ops.metrics import prepare_multiprocess

        # Before the workers start: each writes its metrics to a shared directory.
        clean_up = prepare_multiprocess() if ops.metrics else _nothing
        config = uvicorn_config(
            "dataserve.app:from_env",
            limits,
            tls=tls,
            factory=True,
            workers=workers,
            **logging_kwargs,
        )
        from uvicorn.supervisors import Multiprocess

        # uvicorn < 0.36 takes the worker's target; later ones build it.
        extra: dict[str, Any] = {}
        if "target" in inspect.signature(Multiprocess).parameters:
            extra["target"] = uvicorn.Server(config).run
        try:
            with _exit_quietly_on_signals():
                Multiprocess(config, sockets=[sock], **extra).run()
        finally:
            clean_up()
            if tcp_sock is not None:
                tcp_sock.close()
        return
    if isinstance(data_handler, str):
        from .loader import load_handler

        data_handler = load_handler(data_handler)
    if tcp_sock is not None:
        data_handler = resolve_handler(data_handler)  # one instance for both transports
    app = create_app(data_handler, limits=limits, ops=ops, token=token)
    config = uvicorn_config(app, limits, tls=tls, **logging_kwargs)
    server = (
        uvicorn.Server(config)
        if tcp_sock is None
        else _WithNative(config, tcp_sock, data_handler, app, token, tls)
    )
    with _exit_quietly_on_signals():
        server.run(sockets=[sock])
    sock.close()


class _WithNative(uvicorn.Server):
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
        from rawproto.server import start_server

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


class _Terminated(Exception):
    pass


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated


@contextlib.contextmanager
def _exit_quietly_on_signals() -> Iterator[None]:
    """Return normally after a graceful shutdown on Ctrl-C or SIGTERM.

    uvicorn drains, restores the previous handlers and then re-raises the
    signal it caught; SIGTERM's default action would kill the process with
    status -15 after a clean shutdown. Handled here, the caller exits 0.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main else None
    try:
        yield
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _default_banner(url: str, log_format: str = "text") -> None:
    announce(f"Serving data on {url}. Press Ctrl-C to stop.", log_format, url=url)


def _nothing() -> None:
    return None


class BackgroundLoop:
    """One daemon thread running an event loop, shared by background servers."""

    _instance: BackgroundLoop | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, name="dataserve-background-loop", daemon=True
        )
        self._thread.start()

    @classmethod
    def shared(cls) -> BackgroundLoop:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result from another thread."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("BackgroundLoop.run called from the loop's own thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class BackgroundServer:
    """A uvicorn server running on the shared background loop.

    ``start()`` returns once the port accepts connections; ``stop()`` lets
    in-flight requests finish and returns once the port is released.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits | None = None,
        log_level: str = "warning",
        **config: Any,
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.limits: Limits = limits or getattr(app, "limits", None) or DEFAULT_LIMITS
        self._config = dict(log_level=log_level, **config)
        self._loop = BackgroundLoop.shared()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._config.get("tls") else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> BackgroundServer:
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
            self._loop.run(launch(), timeout=30)
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

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
