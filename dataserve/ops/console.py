"""The console: a page about the server, and a request console, at ``{prefix}/``.

=============================  ================================================
route                          answer
=============================  ================================================
``GET {prefix}``               307 to ``{prefix}/``
``GET {prefix}/``              the page (``static/console.html``)
``GET {prefix}/static/NAME``   its stylesheet and script, nothing else
``GET {prefix}/stats``         the status and live figures as JSON, refreshed
                               by the page every second (``?since=T``: only
                               the chart's points after ``T``)
=============================  ================================================

The page, its stylesheet and its script are files of this package: no build
step, nothing fetched from elsewhere, and a content security policy that
forbids anything but this server (no inline script, no other origin). The
script puts every text it shows into the page as text, never as markup.

With a token set, every console route needs it, as ``Authorization: Bearer``
or as the password of HTTP Basic authentication: a browser cannot add a
header to a page it opens, but asks for a password when challenged. The
console's requests to the handler need it as ``Bearer``, as every data
request does; the page asks for it once and keeps it in memory only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime
import importlib.metadata
import inspect
import math
import os
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..core.dispatch import HandlerPool
from ..core.limits import Limits
from ..core.routing import Router
from ..core.security import bearer_token, token_matches
from .config import OpsConfig
from .observe import Observer
from .readiness import Readiness
from .stats import Stats

__all__ = ["CONTENT_SECURITY_POLICY", "Console", "console_for", "describe_handler"]

#: The page may load and connect to this server only: no inline script or
#: style, no other origin, no frames, no form posts, no <base> rewriting.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    # Answers behind a token stay out of caches, the browser's included.
    "cache-control": "no-store",
}

# The files the page is made of, and nothing else: a name is never a path.
_ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_files: dict[str, bytes] = {}


def _asset(name: str) -> bytes:
    data = _files.get(name)
    if data is None:
        data = _files[name] = (resources.files(__package__) / "static" / name).read_bytes()
    return data


def _version() -> str:
    try:
        return importlib.metadata.version("dataserve")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def describe_handler(handler: Any) -> dict[str, str]:
    """``{"name", "module", "kind"}`` of what an app serves: the ``class`` of an
    ``HTTPDataHandler`` (given as a class or an instance), a ``router`` or a
    ``function``."""
    if isinstance(handler, str):  # MODULE:ATTR, not loaded here
        module, _, name = handler.partition(":")
        return {"name": name, "module": module, "kind": "name"}
    target: Any
    if inspect.ismethod(handler) and handler.__name__ == "handle_request":
        # What serving code resolves an instance to (resolve_handler).
        handler = handler.__self__
    if inspect.isclass(handler):
        target, kind = handler, "class"
    elif isinstance(handler, Router):
        target, kind = type(handler), "router"
    elif inspect.isroutine(handler):
        target, kind = handler, "function"
    else:
        target, kind = type(handler), "class"  # an instance: its class is what was written
    return {
        "name": getattr(target, "__qualname__", repr(target)),
        "module": getattr(target, "__module__", None) or "",
        "kind": kind,
    }


def _basic_password(header: bytes) -> bytes | None:
    """The password of an ``Authorization: Basic`` value (any user name)."""
    scheme, _, encoded = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    _user, colon, password = decoded.partition(b":")
    return password if colon else None


class Console:
    """The console routes of one app (see the module docstring).

    ``handler`` is what the app serves, ``pool`` the threads its ``def``
    handlers run on, ``observer`` what keeps its requests in flight. The
    listeners and the number of workers are the serving code's to tell
    (``serving``); until it does, the page shows the address a request
    came in on.
    """

    def __init__(
        self,
        prefix: str,
        *,
        handler: Any,
        limits: Limits,
        token: str | None,
        readiness: Readiness,
        pool: HandlerPool,
        observer: Observer | None,
        metrics_on: bool,
    ) -> None:
        #: Where the page is: ``{prefix}/``.
        self.path = prefix + "/"
        self._prefix = prefix
        self._handler = describe_handler(handler)
        self._limits = dataclasses.asdict(limits)
        self._token = token.encode() if token else None
        self._readiness = readiness
        self._started = time.monotonic()
        self._started_at = datetime.datetime.now(datetime.timezone.utc)
        self._workers = 1
        self._listeners: list[dict[str, str]] = []
        self.stats = Stats(
            pool=pool, threads=limits.handler_threads, observer=observer, metrics_on=metrics_on
        )

    def serving(self, workers: int, listeners: Sequence[tuple[str, str]]) -> None:
        """What serves the app: ``workers`` processes, and ``listeners`` as
        ``(transport, address)`` pairs such as ``("http", "http://127.0.0.1:5001")``
        and ``("native", "tcp://127.0.0.1:5002")``."""
        self._workers = workers
        self._listeners = [{"transport": t, "address": a} for t, a in listeners]

    @property
    def names(self) -> list[str]:
        """The console's paths below the prefix, for the list of known routes."""
        return ["", "stats", *(f"static/{name}" for name in _ASSETS)]

    def routes(self) -> list[BaseRoute]:
        prefix = self._prefix
        return [
            Route(prefix, self._to_page, methods=["GET"]),
            Route(prefix + "/", self._page, methods=["GET"]),
            Route(prefix + "/stats", self._stats, methods=["GET"]),
            Route(prefix + "/static/{name}", self._static, methods=["GET"]),
        ]

    def status(self, request: Request) -> dict[str, Any]:
        """The ``server`` part of the stats: what the page shows as the status."""
        listeners = self._listeners or _listener_of(request)
        return {
            "version": _version(),
            "handler": self._handler,
            "pid": os.getpid(),
            "started": self._started_at.isoformat(timespec="seconds"),
            "uptime": round(time.monotonic() - self._started, 3),
            "workers": self._workers,
            "listeners": listeners,
            "state": self._readiness.state,
            "limits": self._limits,
            "metrics": self.stats.metrics_on,
            "token_required": self._token is not None,
            "root_path": request.scope.get("root_path", ""),
        }

    def _denied(self, request: Request) -> Response | None:
        if self._token is None:
            return None
        values = request.headers.getlist("authorization")
        if len(values) == 1:  # two are ambiguous: refused, as data requests do
            value = values[0].encode("latin-1")
            presented = bearer_token(value)
            if presented is None:
                presented = _basic_password(value)
            if token_matches(self._token, presented):
                return None
        response = PlainTextResponse(
            "missing or wrong token: send Authorization: Bearer <token>, "
            "or give the token as the password when the browser asks\n",
            status_code=401,
            headers=_HEADERS,
        )
        # Bearer for programs; Basic makes a browser ask for the token.
        response.raw_headers += [
            (b"www-authenticate", b'Bearer realm="dataserve"'),
            (b"www-authenticate", b'Basic realm="dataserve", charset="UTF-8"'),
        ]
        return response

    async def _to_page(self, request: Request) -> Response:
        # The page's links are relative to it: it must be opened as {prefix}/.
        return RedirectResponse(request.scope.get("root_path", "") + self.path, status_code=307)

    async def _page(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        return Response(
            _asset("console.html"), media_type="text/html; charset=utf-8", headers=_HEADERS
        )

    async def _static(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        name = request.path_params["name"]
        media_type = _ASSETS.get(name)
        if media_type is None:
            return PlainTextResponse(
                f"no such file: {name}; the console's are "
                + ", ".join(f"{self._prefix}/static/{n}" for n in _ASSETS)
                + "\n",
                status_code=404,
                headers=_HEADERS,
            )
        return Response(_asset(name), media_type=media_type, headers=_HEADERS)

    async def _stats(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        since = None
        text = request.query_params.get("since")
        if text is not None:
            try:
                since = float(text)
            except ValueError:
                since = math.nan
            if not math.isfinite(since):
                return PlainTextResponse(
                    f"since must be a time in seconds, as a point's t, not {text!r}\n",
                    status_code=400,
                    headers=_HEADERS,
                )
        stats = self.stats
        # Several workers' files are read off the loop; one process's totals
        # are a few sums, not worth a thread hop.
        totals = await asyncio.to_thread(stats.totals) if stats.shared else stats.totals()
        body = {"server": self.status(request), **stats.figures(totals, since)}
        return Response(orjson.dumps(body), media_type="application/json", headers=_HEADERS)


def _listener_of(request: Request) -> list[dict[str, str]]:
    """The address the request came in on, when nobody said what listens."""
    server = request.scope.get("server")
    if not server:
        return []
    host, port = server[0], server[1]
    if port is None:  # a Unix socket
        return [{"transport": "http", "address": f"unix:{host}"}]
    if ":" in host:
        host = f"[{host}]"
    return [{"transport": "http", "address": f"{request.url.scheme}://{host}:{port}"}]


def console_for(
    ops: OpsConfig,
    *,
    handler: Any,
    limits: Limits,
    token: str | None,
    readiness: Readiness,
    pool: HandlerPool,
    observer: Observer | None,
) -> Console | None:
    """The ``Console`` of an app with operations config ``ops``; ``None`` when it is off."""
    if not ops.console_on:
        return None
    return Console(
        ops.prefix,
        handler=handler,
        limits=limits,
        token=token,
        readiness=readiness,
        pool=pool,
        observer=observer,
        metrics_on=ops.metrics,
    )
