"""The ASGI app behind the callback API: one callback, every path, every method.

==========================================  =======================================
request                                     answer
==========================================  =======================================
callback returns a valid response dict      its status, headers and message
callback returns an invalid one             500 naming the problem (logged)
callback raises                             500 naming the exception's type only
                                            (logged with its traceback)
callback raises a ``DataServeError``        its status and message (raised on purpose)
callback takes over ``handler_timeout``     504 (logged); a ``def`` callback's thread
                                            is replaced for later calls
shutdown grace period ends first            503 (``Retry-After`` if it had not begun),
                                            connection closed
``Content-Length`` above ``max_body_size``  413 at once, callback not called, closed
body read past ``max_body_size``            413, connection closed
body stalls past ``body_timeout``           408, connection closed
client leaves mid-body                      nothing (nobody to answer)
==========================================  =======================================

What a failed call is answered is ``dataserve.core.outcome``'s policy, and
its deadline ``dataserve.core.guard``'s (a ``Watchdog`` deadline; a stuck
``def`` callback's thread is abandoned and replaced, up to
``Limits.max_stuck_threads``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from ..core.deadlines import Watchdogs, resolution_for
from ..core.errors import DataServeError
from ..core.guard import Guard, Settled
from ..core.limits import Limits
from ..http.app import send_error
from .messages import InvalidResponse, Reply, build_reply, parse_query, request_headers
from .stream import DataStream

__all__ = ["CallbackApp", "CallbackEndpoint"]

logger = logging.getLogger("dataserve.callback")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# A request that never reached the callback (shutdown) may be sent again.
_RETRY = [(b"retry-after", b"1")]


class CallbackEndpoint:
    """ASGI endpoint: build the request dict, call the callback, send its answer.

    Each endpoint has its own ``Dispatcher``, so a slow ``def`` callback only
    ever holds up its own server's requests, never another server's.
    """

    def __init__(self, cbfunc: Callable[..., Any], *, httpdid: int, limits: Limits) -> None:
        self.cbfunc = cbfunc
        self.httpdid = httpdid
        self.limits = limits
        # Body deadlines: one sweeping timer per loop, at most a quarter late.
        self._body_watchdogs = Watchdogs(resolution_for(limits.body_timeout))
        self._open_dispatcher()

    def _open_dispatcher(self) -> None:
        self.guard = Guard(self.limits, f"dataserve-callback-{self.httpdid}", answer_shutdown=True)
        self.dispatcher = self.guard.dispatcher
        self._call = self.guard.prepare(self.cbfunc)

    async def aclose(self) -> None:
        """End the callback threads, then get ready to be served again."""
        # The server has already given in-flight calls shutdown_timeout to
        # finish, so idle threads only need a moment to exit; a callback still
        # running now is hung, and its daemon thread is left behind. In a
        # thread, because the loop is shared with other servers.
        await asyncio.to_thread(self.guard.close, min(1.0, self.limits.shutdown_timeout))
        self._open_dispatcher()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = _content_length(scope)
        limit = self.limits.max_body_size
        if length is not None and length > limit:
            # Decided from the header alone: the body is never read, and the
            # connection closes so the unread bytes cannot be taken as a request.
            await send_error(
                send,
                413,
                f"request body of {length} bytes is over the limit of {limit} bytes",
                close=True,
            )
            return
        stream = DataStream(
            receive,
            asyncio.get_running_loop(),
            max_size=limit,
            timeout=self.limits.body_timeout,
            watchdogs=self._body_watchdogs,
        )
        request = self._request(scope, stream)
        where = f"{request['verb']} {_printable(request['path'])}"
        try:
            settled = await self.guard.call(self._call, request)
        finally:
            stream.close()
        if stream.error is not None:
            # The body could not be read to its end: that answer wins over
            # whatever the callback made of it.
            logger.info("callback %d, %s: %s", self.httpdid, where, stream.error.message)
            if not stream.disconnected:
                await send_error(send, stream.error.status, stream.error.message, close=True)
            return
        if not settled.ok:
            outcome = settled.outcome(where, self.limits.handler_timeout, "the callback")
            self._log_failure(settled, where, outcome.message)
            await send_error(
                send,
                outcome.status,
                outcome.message,
                close=settled.shut_down,
                headers=_RETRY if outcome.retry else None,
            )
            return
        response = settled.value
        try:
            reply = build_reply(response, head=request["verb"] == "HEAD")
        except InvalidResponse as exc:
            logger.error(
                "callback %d answered %s with an invalid response: %s", self.httpdid, where, exc
            )
            await send_error(send, 500, f"invalid response from the callback: {exc}")
            return
        await send(_start(reply))
        await send({"type": "http.response.body", "body": reply.body})

    def _log_failure(self, settled: Settled, where: str, message: str) -> None:
        if settled.timed_out:
            timeout = self.limits.handler_timeout
            logger.error("callback %d did not answer %s in %g s", self.httpdid, where, timeout)
        elif settled.shut_down:
            logger.warning("callback %d, %s: %s", self.httpdid, where, message)
        elif isinstance(settled.error, DataServeError):  # raised on purpose, for the client
            logger.info("callback %d, %s: %s", self.httpdid, where, message)
        else:
            logger.error("callback %d raised for %s", self.httpdid, where, exc_info=settled.error)

    def _request(self, scope: Scope, stream: DataStream) -> dict[str, Any]:
        query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client") or ("", 0)
        return {
            "verb": scope["method"],
            "path": scope["path"],
            "querystr": query,
            "querydict": parse_query(query),
            "version": scope.get("http_version", "1.1"),
            "datastream": stream,
            "headers": request_headers(scope["headers"]),
            "httpdid": self.httpdid,
            "remoteipstr": client[0],
            "remoteportnum": client[1],
        }


def _start(reply: Reply) -> Message:
    """``http.response.start`` for ``reply``, with the server's extensions for the
    status line (``dataserve.http.cycle``): other ASGI servers ignore them and
    write ``HTTP/1.1`` and the standard reason phrase."""
    start: Message = {
        "type": "http.response.start",
        "status": reply.status,
        "headers": reply.headers,
    }
    if reply.reason is not None:
        start["dataserve.reason"] = reply.reason
    if reply.http_version != "1.1":
        start["dataserve.http_version"] = reply.http_version
    return start


def _printable(text: str) -> str:
    # A path may hold decoded CR/LF (%0d%0a): never let it forge a log line.
    return text if text.isprintable() else repr(text)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # uvicorn's parsers refuse these before the app is called
    return None


class CallbackApp(Starlette):
    """A Starlette application serving one callback on every path and method.

    ``httpdid`` is the id the callback sees in every request dict. Add
    Starlette middleware as usual; without any, requests go straight to the
    endpoint.
    """

    def __init__(
        self, cbfunc: Callable[..., Any], *, httpdid: int, limits: Limits, debug: bool = False
    ) -> None:
        self.limits = limits
        self.httpdid = httpdid
        self.endpoint = CallbackEndpoint(cbfunc, httpdid=httpdid, limits=limits)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            # uvicorn has let in-flight requests finish before lifespan ends.
            await self.endpoint.aclose()

        super().__init__(
            debug=debug,
            routes=[Route("/{path:path}", self.endpoint, methods=None)],
            lifespan=lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.user_middleware:
            await self.endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
