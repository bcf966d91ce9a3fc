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
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.routing import Route

from ..core.codec import Codec, CodecRegistry, default_registry, parse_media_type
from ..core.deadlines import Watchdogs, resolution_for
from ..core.dispatch import Dispatcher
from ..core.errors import CodecError
from ..core.exchange import Decode, Exchange
from ..core.limits import DEFAULT_LIMITS, Limits
from ..core.metrics import process_exiting
from ..core.security import bearer_token, token_matches
from ..ops.config import DEFAULT_OPS, OpsConfig
from ..ops.console import console_for
from ..ops.observe import CLIENT_CLOSED, Observer, observer_for
from ..ops.readiness import Readiness
from ..ops.routes import ops_routes
from .cycle import WHOLE_BODY

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


class _Disconnected(Exception):
    """The client went away before its request was complete."""

    def __init__(self, received: int) -> None:
        self.received = received


def _resource_of(scope: Scope) -> str:
    """The resource a request names: its path below the app's root path."""
    path: str = scope["path"]
    root = scope.get("root_path")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


class _Reject(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        close: bool = False,
        received: int = 0,
        retry: bool = False,
    ) -> None:
        self.status, self.message, self.close = status, message, close
        self.received = received  # body bytes read before the refusal
        self.retry = retry  # never reached the handler: safe to send again


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
    """ASGI endpoint: read the body, run the exchange (decode, handler, encode), answer."""

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
        self._decoders: dict[bytes | None, Decode] = {}
        self._media_bytes: dict[str | None, bytes] = {}
        # Body deadlines when the server cannot take a body whole (not ours):
        # one timer per loop sweeps them, at most a quarter timeout late.
        self._watchdogs = Watchdogs(resolution_for(limits.body_timeout))
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
        except _Disconnected as exc:
            return CLIENT_CLOSED, exc.received, 0  # nobody to answer; nothing was handled
        except _Reject as exc:
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
        limit = self.limits.max_body_size
        if length is not None and length > limit:
            # Decided from the header alone: the body is never read, and the
            # connection closes so the unread bytes cannot be taken as a request.
            raise _Reject(
                413,
                f"request body of {length} bytes is over the limit of {limit} bytes",
                close=True,
            )
        decode = self._decoder_for(content_type)
        if whole:
            body = await self._whole(scope)
        else:
            body = await self._read_body(receive)
        received = len(body)
        outcome = await self.exchange.answer(resource, body, decode, self.codecs.encode)
        del body  # a large body goes as soon as nothing needs it
        if not outcome.ok:
            if outcome.status == 503:
                logger.warning("%s: %s", resource, outcome.message)
            raise _Reject(outcome.status, outcome.message, received=received, retry=outcome.retry)
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

    async def _whole(self, scope: Scope) -> bytes:
        """The body, read by the protocol into one buffer (``dataserve.http.cycle``)."""
        read = scope["extensions"][WHOLE_BODY]["read"]
        message = await read(self.limits.max_body_size, self.limits.body_timeout)
        kind = message["type"]
        if kind == "http.request":
            body: bytes = message["body"]
            return body
        received = message.get("received", 0)
        if kind == "dataserve.body_too_large":
            raise _Reject(
                413,
                f"request body is over the limit of {self.limits.max_body_size} bytes",
                close=True,
                received=received,
            )
        if kind == "dataserve.body_stalled":
            raise _Reject(
                408,
                f"request body stalled: nothing received for {self.limits.body_timeout:g} s",
                close=True,
                received=received,
            )
        raise _Disconnected(received)

    def _authorized(self, scope: Scope) -> bool:
        assert self._token is not None
        presented = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if presented is not None:
                    return False  # two Authorization headers: ambiguous, refused
                presented = bearer_token(value)
        return token_matches(self._token, presented)

    def _decoder_for(self, content_type: bytes | None) -> Decode:
        decode = self._decoders.get(content_type)
        if decode is not None:
            return decode
        if not content_type:
            # No Content-Type: no body means None, a body is octet-stream (RFC 9110 8.3).
            decode = _bytes_or_none
        else:
            media_type, params = parse_media_type(content_type)
            try:
                codec = self.codecs.for_media_type(media_type)
            except CodecError as exc:
                raise _Reject(exc.status, exc.message) from None
            decode = functools.partial(_decode_with, codec, params)
        if len(self._decoders) < 256:  # bounded: clients choose these strings
            self._decoders[content_type] = decode
        return decode

    async def _read_body(self, receive: Receive) -> bytes:
        """The body in pieces, from a server that cannot take it whole (plain uvicorn)."""
        limit = self.limits.max_body_size
        chunks: list[bytes] = []
        size = 0
        more = True
        deadline = self._watchdogs.get().start(self.limits.body_timeout)
        try:
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
                    # an idle deadline: each chunk that arrives restarts it
                    deadline.restart(self.limits.body_timeout)
        except asyncio.CancelledError:
            if not deadline.owns():
                raise  # cancelled by someone else (shutdown): not a timeout
            raise _Reject(
                408,
                f"request body stalled: nothing received for {self.limits.body_timeout:g} s",
                close=True,
                received=size,
            ) from None
        finally:
            deadline.stop()
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)


def _bytes_or_none(body: bytes) -> Any:
    return body or None


def _decode_with(codec: Codec, params: dict[str, str], body: bytes) -> Any:
    return codec.decode(body, params)


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
