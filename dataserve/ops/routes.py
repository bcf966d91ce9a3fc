"""The operations routes under the prefix: ``/health``, ``/ready``, ``/metrics``,
and the console's (``dataserve.ops.console``) when it is on.

Every path under the prefix is answered here (404 for the unknown ones), so
none of them ever reaches the data handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..core.metrics import exposition
from ..core.security import bearer_token, token_matches
from .config import OpsConfig
from .console import Console
from .readiness import Readiness

__all__ = ["ops_routes"]


def ops_routes(
    ops: OpsConfig,
    readiness: Readiness,
    token: str | None = None,
    console: Console | None = None,
) -> list[BaseRoute]:
    """The routes for ``ops.prefix`` (none when it is empty), ``console``'s among them.

    With a ``token``, metrics and the console need it like data requests
    (Prometheus scrape configs support bearer tokens); health and readiness
    stay open for load balancers' probes and reveal nothing.
    """
    expected = token.encode() if token else None
    prefix = ops.prefix
    if not prefix:
        return []
    known = ["health", "ready", *(["metrics"] if ops.metrics else [])]
    if console is not None:
        known += console.names

    async def health(request: Request) -> Response:
        # Liveness: the process answers. Not readiness: a draining server
        # is alive, and restarting it would cut its in-flight requests.
        return PlainTextResponse("ok\n")

    async def ready(request: Request) -> Response:
        state = readiness.state
        return PlainTextResponse(state + "\n", status_code=200 if readiness.ready else 503)

    def metrics_view(request: Request) -> Response:
        # A plain def: Starlette runs it on a thread, so reading the worker
        # files in multiprocess mode never stalls the event loop.
        if expected is not None:
            auth = request.headers.getlist("authorization")
            presented = bearer_token(auth[0].encode("latin-1")) if len(auth) == 1 else None
            if not token_matches(expected, presented):
                return PlainTextResponse(
                    "missing or wrong token: send Authorization: Bearer <token>",
                    status_code=401,
                    headers={"www-authenticate": 'Bearer realm="dataserve"'},
                )
        body, content_type = exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    async def unknown(scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"][len(prefix) + 1 :]
        if name in known:  # a known route, another method than GET/HEAD
            response = PlainTextResponse(
                f"method {scope['method']} is not allowed on {prefix}/{name}: use GET\n",
                status_code=405,
                headers={"allow": "GET, HEAD"},
            )
        else:
            response = PlainTextResponse(
                f"{scope['path']} is not an operations route; these are: "
                + ", ".join(f"{prefix}/{name}" for name in known if not name.startswith("static/"))
                + "\n",
                status_code=404,
            )
        await response(scope, receive, send)

    routes: list[BaseRoute] = [
        Route(f"{prefix}/health", health, methods=["GET"]),
        Route(f"{prefix}/ready", ready, methods=["GET"]),
    ]
    if ops.metrics:
        routes.append(Route(f"{prefix}/metrics", metrics_view, methods=["GET"]))
    if console is not None:
        routes += console.routes()
    # An ASGI endpoint (not a request function) answers every method, so
    # no request under the prefix falls through to the data route.
    catch_all = _ASGI(unknown)
    routes += [Route(prefix, catch_all), Route(prefix + "/{rest:path}", catch_all)]
    return routes


class _ASGI:
    """An ASGI callable as an object, which Starlette's ``Route`` serves for
    every method (a plain function would be taken for GET only)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
