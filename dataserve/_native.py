"""Serving the app's handler over rawproto's native TCP framing as well.

``dataserve serve --tcp-port PORT`` serves one handler instance over HTTP and
over the native framing. With one process, ``dataserve.server`` runs both
listeners on uvicorn's loop. With ``--workers N`` the parent reserves the
port (a socket bound with ``SO_REUSEPORT`` that does not listen, so the port
stays taken while workers come and go) and describes the listener in
``$DATASERVE_TCP``; each worker's app (``dataserve.app.from_env``) then
starts its own listener on that port from its lifespan, and the kernel
spreads connections among the workers. A worker's listener stops, draining
its requests, when the app's lifespan ends: after uvicorn has drained HTTP.

The token reaches the workers as ``$DATASERVE_TOKEN``, like HTTP's; TLS
settings are file names, so they travel in ``$DATASERVE_TCP``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .core.security import TLSConfig, token_from_env

if TYPE_CHECKING:
    from .app import DataServeApp

__all__ = ["NATIVE_ENV", "attach_native", "dump_native", "native_spec"]

#: Where a worker finds the native listener it must start.
NATIVE_ENV = "DATASERVE_TCP"


def dump_native(host: str, port: int, tls: TLSConfig | None) -> str:
    """The ``$DATASERVE_TCP`` value for a listener on ``host:port``."""
    files = None if tls is None else [tls.cert, tls.key, tls.client_ca]
    return json.dumps({"host": host, "port": port, "tls": files})


def attach_native(app: DataServeApp, handler: Any, spec: str) -> None:
    """Start a native listener (``spec`` from ``dump_native``) in ``app``'s lifespan.

    It shares ``handler`` (already resolved: one instance) and the app's
    handler threads, limits, token and metrics setting, and binds with
    ``SO_REUSEPORT`` so that every worker can listen on the same port.
    """
    settings = json.loads(spec)
    files = settings.get("tls")
    tls = TLSConfig(*files) if files else None
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(starlette_app: Any) -> AsyncIterator[Any]:
        from rawproto.server import start_server

        async with inner(starlette_app) as state:
            server = await start_server(
                handler,
                settings["port"],
                host=settings["host"],
                limits=app.limits,
                dispatcher=app.endpoint.dispatcher,
                reuse_port=True,
                token=token_from_env(),
                tls=tls,
                metrics=app.ops.metrics,
            )
            try:
                yield state
            finally:
                # Before the app's own shutdown closes the handler threads.
                await server.stop()

    app.router.lifespan_context = lifespan


def native_spec() -> str | None:
    """``$DATASERVE_TCP``, if this process is a worker that serves native TCP."""
    return os.environ.get(NATIVE_ENV) or None
