"""The data endpoint, observed: request id, metrics and access line per request.

``observed(endpoint, ops)`` is decided once, when the app is built: with
everything off it returns the endpoint itself, so the hot path pays nothing;
otherwise an ``ObservedEndpoint`` that does only what is on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import logs
from .config import OpsConfig
from .metrics import TransportMetrics, metrics
from .requestid import HEADER, pick_request_id, reset_request_id, set_request_id

__all__ = ["ObservedEndpoint", "observed"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Logged and counted when no answer was sent at all (the client went away
# before its request was complete): nginx's "client closed request".
CLIENT_CLOSED = 499


def _resource(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


class ObservedEndpoint:
    """ASGI wrapper around the data endpoint (an ASGI app, not a function,
    so Starlette's ``Route`` calls it as one)."""

    def __init__(
        self, endpoint: ASGIApp, *, request_id: bool, metrics: TransportMetrics | None, log: bool
    ) -> None:
        self.endpoint = endpoint
        self._request_id = request_id
        self._metrics = metrics
        self._log = log
        self._count = metrics is not None or log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        rid: str | None = None
        token = None
        header: tuple[bytes, bytes] | None = None
        if self._request_id:
            incoming = None
            for name, value in scope["headers"]:
                if name == HEADER:
                    incoming = value
                    break
            rid = pick_request_id(incoming)
            token = set_request_id(rid)
            header = (HEADER, rid.encode("ascii"))
        if not self._count:
            try:
                await self.endpoint(scope, receive, _with_header(send, header))
            finally:
                if token is not None:
                    reset_request_id(token)
            return

        status = CLIENT_CLOSED
        sent = 0
        received = 0

        async def observed_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                if header is not None:
                    message["headers"] = [*message["headers"], header]
            else:
                sent += len(message.get("body", b""))
            await send(message)

        async def observed_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        try:
            await self.endpoint(scope, observed_receive, observed_send)
        except Exception:
            if status == CLIENT_CLOSED:
                status = 500  # what uvicorn answers to an app that raised
            raise
        finally:
            if token is not None:
                reset_request_id(token)
            duration = time.perf_counter() - start
            if self._metrics is not None:
                self._metrics.observe(_resource(scope), status, duration, received, sent)
            if self._log:
                logs.access(scope, status, sent, received, duration, rid)


def _with_header(send: Send, header: tuple[bytes, bytes] | None) -> Send:
    if header is None:
        return send

    async def send_with_header(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message["headers"], header]
        await send(message)

    return send_with_header


def observed(endpoint: ASGIApp, ops: OpsConfig) -> ASGIApp:
    """``endpoint`` with what ``ops`` turns on around it; itself if nothing is."""
    if not (ops.request_id or ops.metrics or ops.access_log):
        return endpoint
    recorder = metrics(ops.max_resource_labels).transport("http") if ops.metrics else None
    return ObservedEndpoint(
        endpoint, request_id=ops.request_id, metrics=recorder, log=ops.access_log
    )
