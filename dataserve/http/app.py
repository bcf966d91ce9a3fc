"""The ASGI application: a data handler served over HTTP on Starlette.

``create_app(handler)`` returns a ``DataServeApp``, a ``Starlette``
application whose catch-all route is a ``DataEndpoint``. Any path answers
``PUT`` and ``POST`` by calling ``handle_request(resource, payload)``:

==========================================  =======================================
request                                     answer
==========================================  =======================================
handler returns a value                     200, body and bare media type
handler returns ``None``                    404 ``resource '/x' is not handled``
handler raises                              500 (logged with its traceback)
``Content-Type`` with no codec              415 naming the supported types
body that does not decode                   400 saying what is wrong
``Content-Length`` above the limit          413 at once, body unread, connection closed
chunked body crossing the limit             413 as soon as it does, connection closed
body stalls past ``body_timeout``           408, connection closed
``GET``, ``HEAD``, any other method         405 with ``Allow: PUT, POST``
``GET /`` with the console on               307 to the console (``/_dataserve/``)
==========================================  =======================================

Data requests take a fast path straight to the endpoint (no middleware stack,
no router scan) unless the user adds Starlette middleware, in which case the
whole Starlette stack runs as usual. Paths under the operations prefix
(``/_dataserve``: health, ready, metrics; see ``dataserve.ops``) go to the
router instead and never reach the handler.

What a request's body is and the body itself, within the limits, are read
by ``dataserve.http.reading``; this module decides who may call and how,
and answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.routing import Route

from ..core.codec import CodecRegistry, default_registry
from ..core.dispatch import Dispatcher
from ..core.exchange import Exchange
from ..core.limits import DEFAULT_LIMITS, Limits
from ..core.metrics import process_exiting
from ..core.security import bearer_token, token_matches
from ..ops.config import DEFAULT_OPS, OpsConfig
from ..ops.console import console_for
from ..ops.observe import CLIENT_CLOSED, Observer, observer_for
from ..ops.readiness import Readiness
from ..ops.routes import ops_routes
from .cycle import WHOLE_BODY
from .reading import Disconnected, Reject, RequestReader

__all__ = ["DataEndpoint", "DataServeApp", "create_app", "send_error"]

logger = logging.getLogger("dataserve.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ALLOW = [(b"allow", b"PUT, POST")]
_CLOSE = [(b"connection", b"close")]
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="dataserve"')]
# A request the handler never saw may come back once the server is up again.
_RETRY = [(b"retry-after", b"1")]


def _resource_of(scope: Scope) -> str:
    """The resource a request names: its path below the app's root path."""
    path: str = scope["path"]
    root = scope.get("root_path")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


async def send_error(
    send: Send,
    status: int,
    message: str,
    *,
    close: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> int:
    """An error reply: the status and a one-line ``text/plain`` message.

    Returns the number of body bytes sent."""
    body = message.encode("utf-8", "replace")
    head = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    if headers:
        head += headers
    if close:
        head += _CLOSE
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
    return len(body)


class DataEndpoint:
    """ASGI endpoint: who may call and how, the exchange (decode, handler, encode), the answer.

    Reading the request (its decoder, its body within the limits) is its
    ``RequestReader``'s (``dataserve.http.reading``).
    """

    def __init__(
        self,
        handler: Any,
        *,
        limits: Limits = DEFAULT_LIMITS,
        codecs: CodecRegistry = default_registry,
        dispatcher: Dispatcher | None = None,
        token: str | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.limits = limits
        #: Request ids, metrics and access lines (``None``: all off).
        self._observer = observer
        # The built-in JSON and msgpack decoders bound to these limits
        # (max_structured_size, container counts, depth): core.budget.
        self.codecs = codecs.with_limits(limits)
        #: The bearer token every request must present; ``None``: no auth.
        self._token = token.encode() if token else None
        self.dispatcher = dispatcher or Dispatcher(
            limits.handler_threads, max_stuck=limits.max_stuck_threads
        )
        self.exchange = Exchange(handler, self.dispatcher, limits.handler_timeout)
        #: The decoder and the body of each request (``dataserve.http.reading``).
        self._reader = RequestReader(limits, self.codecs)
        self._media_bytes: dict[str | None, bytes] = {}
        #: The console's page (``/_dataserve/``): where ``GET /`` is sent and
        #: what a 405 points at; ``None`` when there is none.
        self.console_path: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As an ASGI app behind middleware: plain ASGI messages only."""
        await self.serve(scope, receive, send, False)

    async def serve(self, scope: Scope, receive: Receive, send: Send, direct: bool = True) -> None:
        """Answer one request. ``direct``: called by the server itself, with no
        middleware between, so the ``dataserve.whole_body`` extension may be used."""
        resource = _resource_of(scope)
        whole = direct and WHOLE_BODY in scope.get("extensions", ())
        observer = self._observer
        if observer is None:
            await self._answer(scope, resource, receive, send, None, whole)
            return
        seen = observer.begin(scope)
        status, received, sent = CLIENT_CLOSED, 0, 0
        try:
            status, received, sent = await self._answer(
                scope, resource, receive, send, seen.headers, whole
            )
        except Exception:
            status = 500  # what uvicorn answers to an app that raised
            raise
        finally:
            observer.end(scope, resource, seen, status, received, sent)

    async def _answer(
        self,
        scope: Scope,
        resource: str,
        receive: Receive,
        send: Send,
        extra: list[tuple[bytes, bytes]] | None,
        whole: bool,
    ) -> tuple[int, int, int]:
        """Answer one request; ``extra`` headers go on the answer, whatever
        it is. Returns its status, and the body bytes received and sent
        (status ``CLIENT_CLOSED`` if the client went away first)."""
        method = scope["method"]
        if method != "PUT" and method != "POST":
            # Before the token: neither answer reveals anything, and a
            # browser opening the server's address must reach the console.
            return await self._not_allowed(scope, resource, send, extra)
        if self._token is not None and not self._authorized(scope):
            sent = await send_error(
                send,
                401,
                "missing or wrong token: send Authorization: Bearer <token>",
                headers=_CHALLENGE + extra if extra else _CHALLENGE,
            )
            return 401, 0, sent
        try:
            return await self._serve(scope, resource, receive, send, extra, whole)
        except Disconnected as exc:
            return CLIENT_CLOSED, exc.received, 0  # nobody to answer; nothing was handled
        except Reject as exc:
            headers = extra
            if exc.retry:
                headers = _RETRY + extra if extra else _RETRY
            sent = await send_error(send, exc.status, exc.message, close=exc.close, headers=headers)
            return exc.status, exc.received, sent

    async def _not_allowed(
        self, scope: Scope, resource: str, send: Send, extra: list[tuple[bytes, bytes]] | None
    ) -> tuple[int, int, int]:
        method = scope["method"]
        console = self.console_path
        if console is None:
            hint = ""
        elif resource == "/" and (method == "GET" or method == "HEAD"):
            location = quote(scope.get("root_path", "") + console).encode("ascii")
            headers = [(b"location", location), (b"content-length", b"0")]
            await send(
                {
                    "type": "http.response.start",
                    "status": 307,
                    "headers": headers + extra if extra else headers,
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return 307, 0, 0
        else:
            hint = f"; this server's console is at {console}"
        sent = await send_error(
            send,
            405,
            f"method {method} is not allowed: call a resource with PUT or POST{hint}",
            headers=_ALLOW + extra if extra else _ALLOW,
        )
        return 405, 0, sent

    async def _serve(
        self,
        scope: Scope,
        resource: str,
        receive: Receive,
        send: Send,
        extra: list[tuple[bytes, bytes]] | None,
        whole: bool,
    ) -> tuple[int, int, int]:
        reader = self._reader
        decode = reader.check(scope)
        body = await (reader.whole(scope) if whole else reader.pieces(receive))
        received = len(body)
        outcome = await self.exchange.answer(resource, body, decode, self.codecs.encode)
        del body  # a large body goes as soon as nothing needs it
        if not outcome.ok:
            if outcome.status == 503:
                logger.warning("%s: %s", resource, outcome.message)
            raise Reject(outcome.status, outcome.message, received=received, retry=outcome.retry)
        media = outcome.media
        mt = self._media_bytes.get(media)
        if mt is None:
            mt = self._media_bytes[media] = (media or "").encode("latin-1")
        data = outcome.body
        headers = [(b"content-type", mt), (b"content-length", b"%d" % len(data))]
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        return 200, received, len(data)

    def _authorized(self, scope: Scope) -> bool:
        assert self._token is not None
        presented = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if presented is not None:
                    return False  # two Authorization headers: ambiguous, refused
                presented = bearer_token(value)
        return token_matches(self._token, presented)


class DataServeApp(Starlette):
    """A Starlette application serving one data handler on every path."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: Limits = DEFAULT_LIMITS,
        codecs: CodecRegistry = default_registry,
        debug: bool = False,
        ops: OpsConfig = DEFAULT_OPS,
        token: str | None = None,
    ) -> None:
        self.limits = limits
        self.ops = ops
        # Request ids, metrics and access lines are decided here, once.
        observer = observer_for(ops)
        self.endpoint = DataEndpoint(
            handler, limits=limits, codecs=codecs, token=token, observer=observer
        )
        #: Ready once the lifespan has started, draining from SIGTERM on.
        self.readiness = Readiness()
        self.readiness.hold("startup")
        self.readiness.check(self._threads_stuck)
        #: The status page and request console (``dataserve.ops.console``);
        #: ``None`` when it is off.
        self.console = console_for(
            ops,
            handler=handler,
            limits=limits,
            token=token,
            readiness=self.readiness,
            pool=self.endpoint.dispatcher.pool,
            observer=observer,
        )
        if self.console is not None:
            self.endpoint.console_path = self.console.path
        # No path starts with NUL: with the routes off, nothing leaves the fast path.
        self._ops_prefix = ops.prefix or "\0"

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            undo = self.readiness.watch_signals(ops.drain_delay)
            self.readiness.release("startup")
            forced = False
            try:
                yield
            except asyncio.CancelledError:
                # A forced exit (a second Ctrl-C) cancels the lifespan with
                # every other task: what was asked, so no error, and no wait.
                forced = True
                logger.warning("forced exit: handler threads still running are abandoned")
            finally:
                self.readiness.drain()
                undo()
                if forced:
                    self.endpoint.dispatcher.close()
                else:
                    # uvicorn has let in-flight requests finish before lifespan
                    # ends; waiting for the handler threads happens off the
                    # loop, which may be shared with other servers.
                    await asyncio.to_thread(
                        self.endpoint.dispatcher.close, wait=limits.shutdown_timeout
                    )
                process_exiting()

        super().__init__(
            debug=debug,
            routes=[
                *ops_routes(ops, self.readiness, token, self.console),
                Route("/{resource:path}", self.endpoint, methods=None),
            ],
            lifespan=lifespan,
        )

    def _threads_stuck(self) -> str | None:
        pool = self.endpoint.dispatcher.pool
        if not pool.exhausted:
            return None
        return (
            f"every handler thread is stuck: {pool.stuck} calls ran past handler_timeout "
            f"({self.limits.handler_timeout:g} s) and no replacement is left "
            f"(max_stuck_threads {self.limits.max_stuck_threads}); restart the process"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The fast path: data requests go straight to the endpoint unless the
        # user added middleware, which then must see every request, or the
        # path is under the operations prefix, which the router answers.
        if (
            scope["type"] == "http"
            and not self.user_middleware
            # under --root-path the path starts with the root path
            and not scope["path"].startswith(self._ops_prefix, len(scope.get("root_path", "")))
        ):
            await self.endpoint.serve(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    handler: Any,
    *,
    limits: Limits | None = None,
    codecs: CodecRegistry | None = None,
    handler_threads: int | None = None,
    ops: OpsConfig | None = None,
    token: str | None = None,
) -> DataServeApp:
    """The ASGI app for ``handler``: an ``HTTPDataHandler`` subclass or
    instance, a ``Router``, or a ``fn(resource, payload)``.

    ``ops`` sets the operations routes, metrics, request ids and access log
    (``dataserve.ops.OpsConfig``; by default: routes under ``/_dataserve``,
    metrics and request ids on, access log off). ``token`` makes every data
    request present ``Authorization: Bearer <token>`` (401 otherwise).
    Serve it with ``uvicorn module:app`` or gunicorn's uvicorn worker.
    """
    limits = limits or DEFAULT_LIMITS
    if handler_threads is not None:
        limits = limits.replace(handler_threads=handler_threads)
    return DataServeApp(
        handler,
        limits=limits,
        codecs=codecs or default_registry,
        ops=ops or DEFAULT_OPS,
        token=token,
    )
