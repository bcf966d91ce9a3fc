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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.routing import Route

from ..core.codec import Codec, CodecRegistry, default_registry, parse_media_type
from ..core.deadlines import Deadline, Watchdogs, resolution_for
from ..core.dispatch import Dispatcher
from ..core.errors import CodecError, DataServeError
from ..core.handler import make_caller
from ..core.limits import DEFAULT_LIMITS, Limits
from ..core.metrics import process_exiting
from ..core.security import bearer_token, token_matches
from ..ops.config import DEFAULT_OPS, OpsConfig
from ..ops.console import console_for
from ..ops.observe import CLIENT_CLOSED, Observer, observer_for
from ..ops.readiness import Readiness
from ..ops.routes import ops_routes

__all__ = ["DataEndpoint", "DataServeApp", "create_app", "send_error"]

logger = logging.getLogger("dataserve.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ALLOW = [(b"allow", b"PUT, POST")]
_CLOSE = [(b"connection", b"close")]
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="dataserve"')]

if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def _timeout(delay: float) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        fired = False

        def fire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = loop.call_later(delay, fire)
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                raise TimeoutError from None
            raise
        finally:
            handle.cancel()


class _Disconnected(Exception):
    """The client went away before its request was complete."""

    def __init__(self, received: int) -> None:
        self.received = received


_BODY = "body"
_HANDLER = "handler"


def _resource_of(scope: Scope) -> str:
    """The resource a request names: its path below the app's root path."""
    path: str = scope["path"]
    root = scope.get("root_path")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


class _Reject(Exception):
    def __init__(self, status: int, message: str, close: bool = False, received: int = 0) -> None:
        self.status, self.message, self.close = status, message, close
        self.received = received  # body bytes read before the refusal


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
    """ASGI endpoint: decode the body, call the handler, encode its answer."""

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
        self.codecs = codecs
        #: The bearer token every request must present; ``None``: no auth.
        self._token = token.encode() if token else None
        self.dispatcher = dispatcher or Dispatcher(limits.handler_threads)
        self._call = make_caller(handler, self.dispatcher)
        self._media_cache: dict[bytes | None, tuple[Codec | None, dict[str, str]]] = {}
        self._media_bytes: dict[str | None, bytes] = {}
        # Body and handler deadlines, swept by one timer per loop: they fire
        # at most a quarter of the shorter timeout late (0.25 s at most).
        self._watchdogs = Watchdogs(resolution_for(limits.body_timeout, limits.handler_timeout))
        #: The console's page (``/_dataserve/``): where ``GET /`` is sent and
        #: what a 405 points at; ``None`` when there is none.
        self.console_path: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resource = _resource_of(scope)
        observer = self._observer
        if observer is None:
            await self._answer(scope, resource, receive, send, None)
            return
        seen = observer.begin(scope)
        status, received, sent = CLIENT_CLOSED, 0, 0
        try:
            status, received, sent = await self._answer(
                scope, resource, receive, send, seen.headers
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
            return await self._serve(scope, resource, receive, send, extra)
        except _Disconnected as exc:
            return CLIENT_CLOSED, exc.received, 0  # nobody to answer; nothing was handled
        except _Reject as exc:
            sent = await send_error(send, exc.status, exc.message, close=exc.close, headers=extra)
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
    ) -> tuple[int, int, int]:
        content_type: bytes | None = None
        length: int | None = None
        # Host and framing checks happen in the protocol (dataserve.http.protocol)
        try:
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value
                elif name == b"content-length":
                    length = int(value)  # uvicorn's parsers have validated it already
        except ValueError:
            raise _Reject(400, "Content-Length is not a number", close=True) from None
        if length is not None and length > self.limits.max_body_size:
            # Decided from the header alone: the body is never read, and the
            # connection closes so the unread bytes cannot be taken as a request.
            raise _Reject(
                413,
                f"request body of {length} bytes is over the limit of "
                f"{self.limits.max_body_size} bytes",
                close=True,
            )
        codec, params = self._codec_for(content_type)
        # One deadline covers the body (idle: each chunk restarts it) and then
        # the handler (absolute); its phase says which answer a timeout gets.
        deadline = self._watchdogs.get().start(self.limits.body_timeout, phase=_BODY)
        try:
            body = await self._read_body(receive, deadline)
            received = len(body)
            try:
                payload = codec.decode(body, params) if codec is not None else (body or None)
            except CodecError as exc:
                raise _Reject(exc.status, exc.message, received=received) from None
            del body  # the payload holds what it needs; free a large body early
            deadline.restart(self.limits.handler_timeout, _HANDLER)
            try:
                result = await self._call(resource, payload)
            except Exception as exc:  # a handler's own TimeoutError included: a failure
                logger.exception("handler raised for %s", resource)
                raise _Reject(
                    500,
                    f"the handler raised {type(exc).__name__} for {resource} (see the server log)",
                    received=received,
                ) from None
        except asyncio.CancelledError:
            if not deadline.owns():
                raise  # cancelled by someone else (shutdown): not a timeout
            if deadline.phase == _BODY:
                raise _Reject(
                    408,
                    f"request body stalled: nothing received for {self.limits.body_timeout:g} s",
                    close=True,
                ) from None
            logger.error(
                "handler for %s did not answer in %g s", resource, self.limits.handler_timeout
            )
            raise _Reject(
                504,
                f"the handler did not answer within {self.limits.handler_timeout:g} s",
                received=received,
            ) from None
        finally:
            deadline.stop()
        if result is None:
            raise _Reject(404, f"resource {resource!r} is not handled", received=received)
        try:
            media_type, data = self.codecs.encode(result)
        except DataServeError as exc:
            logger.error("cannot encode the answer for %s: %s", resource, exc.message)
            raise _Reject(
                500,
                f"the handler's answer for {resource} cannot be sent: {exc.message}",
                received=received,
            ) from None
        mt = self._media_bytes.get(media_type)
        if mt is None:
            mt = self._media_bytes[media_type] = (media_type or "").encode("latin-1")
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

    def _codec_for(self, content_type: bytes | None) -> tuple[Codec | None, dict[str, str]]:
        cached = self._media_cache.get(content_type)
        if cached is not None:
            return cached
        if not content_type:
            # No Content-Type: no body means None, a body is octet-stream (RFC 9110 8.3).
            found: tuple[Codec | None, dict[str, str]] = (None, {})
        else:
            media_type, params = parse_media_type(content_type)
            try:
                found = (self.codecs.for_media_type(media_type), params)
            except CodecError as exc:
                raise _Reject(exc.status, exc.message) from None
        if len(self._media_cache) < 256:  # bounded: clients choose these strings
            self._media_cache[content_type] = found
        return found

    async def _read_body(self, receive: Receive, deadline: Deadline) -> bytes:
        limit = self.limits.max_body_size
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected(size)
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _Reject(
                        413,
                        f"request body is over the limit of {limit} bytes",
                        close=True,
                        received=size,
                    )
                chunks.append(chunk)
                if more:  # an idle deadline: each chunk that arrives restarts it
                    deadline.restart(self.limits.body_timeout)
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)  # the one copy of the body


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
            try:
                yield
            finally:
                self.readiness.drain()
                undo()
                # uvicorn has let in-flight requests finish before lifespan ends;
                # waiting for the handler threads happens off the loop, which
                # may be shared with other servers.
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The fast path: data requests go straight to the endpoint unless the
        # user added middleware, which then must see every request, or the
        # path is under the operations prefix, which the router answers.
        if (
            scope["type"] == "http"
            and not self.user_middleware
            and not scope["path"].startswith(self._ops_prefix)
        ):
            await self.endpoint(scope, receive, send)
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
