"""The hand-off from the parent process to its worker processes.

``dataserve serve --workers N`` (``run_http_server(..., workers=N)``) lets
uvicorn's supervisor fork N workers, and each worker builds its own app by
importing ``dataserve.workers:from_env``. Everything the parent decided
travels in the environment, and this module is the only one that writes or
reads it:

=====================  ==================================================
variable               what it carries
=====================  ==================================================
``DATASERVE_HANDLER``  the handler as ``MODULE:ATTR``
``DATASERVE_LIMITS``   ``Limits`` as JSON
``DATASERVE_OPS``      ``OpsConfig`` as JSON
``DATASERVE_TOKEN``    the bearer token (kept out of process lists)
``DATASERVE_TCP``      the native TCP listener: host, port, TLS file names
``DATASERVE_SERVING``  the number of workers and every listener's address,
                       for the console's page
=====================  ==================================================

(``PROMETHEUS_MULTIPROC_DIR``, where each worker writes its metrics, is
prometheus-client's own: ``dataserve.core.metrics.prepare_multiprocess``.)

With ``--tcp-port`` the parent reserves the port (a socket bound with
``SO_REUSEPORT`` that does not listen, so the port stays taken while workers
come and go); each worker's app then starts its own native listener on that
port from its lifespan, and the kernel spreads connections among the
workers. A worker's listener stops, draining its requests, when the app's
lifespan ends: after uvicorn has drained HTTP.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from .core.handler import resolve_handler
from .core.limits import DEFAULT_LIMITS, Limits
from .core.loading import handler_spec, load_handler
from .core.security import TOKEN_ENV, TLSConfig, token_from_env
from .http.app import DataServeApp, create_app
from .ops.config import DEFAULT_OPS, OpsConfig

__all__ = [
    "FACTORY",
    "HANDLER_ENV",
    "LIMITS_ENV",
    "NATIVE_ENV",
    "OPS_ENV",
    "SERVING_ENV",
    "attach_native",
    "from_env",
    "hand_off",
]

HANDLER_ENV = "DATASERVE_HANDLER"
LIMITS_ENV = "DATASERVE_LIMITS"
OPS_ENV = "DATASERVE_OPS"
#: Where a worker finds the native listener it must start.
NATIVE_ENV = "DATASERVE_TCP"
#: What serves the app, as the console shows it: workers and listeners.
SERVING_ENV = "DATASERVE_SERVING"
#: What uvicorn's workers import to build their app.
FACTORY = "dataserve.workers:from_env"

_EXAMPLE = "dataserve.example:ExampleHandler"


def hand_off(
    handler: Any,
    limits: Limits,
    ops: OpsConfig,
    token: str | None,
    native: tuple[str, int, TLSConfig | None] | None = None,
    serving: tuple[int, list[tuple[str, str]]] | None = None,
) -> None:
    """Write what the workers need into this (the parent's) environment.

    ``handler`` must be importable by name (``MODULE:ATTR``, or a class or
    function defined at a module's top level); ``native`` is the native
    listener's ``(host, port, tls)``, if any; ``serving`` is the number of
    workers and the ``(transport, address)`` of every listener.
    """
    os.environ[HANDLER_ENV] = handler_spec(handler)
    os.environ[LIMITS_ENV] = json.dumps(dataclasses.asdict(limits))
    os.environ[OPS_ENV] = json.dumps(dataclasses.asdict(ops))
    if token:
        os.environ[TOKEN_ENV] = token
    if native is not None:
        host, port, tls = native
        files = None if tls is None else [tls.cert, tls.key, tls.client_ca]
        os.environ[NATIVE_ENV] = json.dumps({"host": host, "port": port, "tls": files})
    if serving is not None:
        workers, listeners = serving
        os.environ[SERVING_ENV] = json.dumps({"workers": workers, "listeners": listeners})


def handed_ops() -> OpsConfig | None:
    """The ``OpsConfig`` the parent handed to this worker, if it handed one."""
    text = os.environ.get(OPS_ENV)
    return OpsConfig(**json.loads(text)) if text else None


def _handed_limits() -> Limits:
    text = os.environ.get(LIMITS_ENV)
    return Limits(**json.loads(text)) if text else DEFAULT_LIMITS


def from_env() -> DataServeApp:
    """App factory for ``uvicorn --factory dataserve.workers:from_env``.

    Builds the app the parent described (see the module docstring); with no
    variables set, it serves the example handler with the defaults.
    """
    handler = load_handler(os.environ.get(HANDLER_ENV) or _EXAMPLE)
    native = os.environ.get(NATIVE_ENV)
    if native:
        handler = resolve_handler(handler)  # one instance for both transports
    app = create_app(
        handler,
        limits=_handed_limits(),
        ops=handed_ops() or DEFAULT_OPS,
        token=token_from_env(),
    )
    if native:
        attach_native(app, handler, json.loads(native))
    serving = os.environ.get(SERVING_ENV)
    if serving and app.console is not None:
        told = json.loads(serving)
        app.console.serving(told["workers"], [tuple(pair) for pair in told["listeners"]])
    return app


def attach_native(app: DataServeApp, handler: Any, settings: dict[str, Any]) -> None:
    """Start a native listener (``host``, ``port``, ``tls`` files) in ``app``'s lifespan.

    It shares ``handler`` (already resolved: one instance) and the app's
    handler threads, limits, token and metrics setting, and binds with
    ``SO_REUSEPORT`` so that every worker can listen on the same port.
    """
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
