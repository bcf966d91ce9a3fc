"""The operations routes under the prefix: ``/health``, ``/ready``, ``/metrics``.

Every path under the prefix is answered here (404 for the unknown ones), so
none of them ever reaches the data handler.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .config import OpsConfig
from .metrics import exposition
from .readiness import Readiness

__all__ = ["ops_routes"]


def ops_routes(ops: OpsConfig, readiness: Readiness) -> list[BaseRoute]:
    """The routes for ``ops.prefix`` (none when it is empty)."""
    prefix = ops.prefix
    if not prefix:
        return []
    known = ["health", "ready", *(["metrics"] if ops.metrics else [])]

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
        body, content_type = exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    async def unknown(request: Request) -> Response:
        name = request.scope["path"][len(prefix) + 1 :]
        if name in known:  # a known route, another method than GET/HEAD
            return PlainTextResponse(
                f"method {request.method} is not allowed on {prefix}/{name}: use GET\n",
                status_code=405,
                headers={"allow": "GET, HEAD"},
            )
        return PlainTextResponse(
            f"{request.url.path} is not an operations route; these are: "
            + ", ".join(f"{prefix}/{name}" for name in known)
            + "\n",
            status_code=404,
        )

    routes: list[BaseRoute] = [
        Route(f"{prefix}/health", health, methods=["GET"]),
        Route(f"{prefix}/ready", ready, methods=["GET"]),
    ]
    if ops.metrics:
        routes.append(Route(f"{prefix}/metrics", metrics_view, methods=["GET"]))
    routes += [
        Route(prefix, unknown, methods=None),
        Route(prefix + "/{rest:path}", unknown, methods=None),
    ]
    return routes
