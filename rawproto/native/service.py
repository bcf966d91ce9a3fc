"""Serving an ``HTTPDataHandler`` over the native framing, on the engine.

The same handler that ``dataserve.run_http_server`` serves, through the same
codec and the same exchange (``dataserve.core.exchange``: decode, handler,
encode, each where it belongs, under the handler deadline), answered by the
same policy (``dataserve.core.outcome``):

=====================================  ===========================================
request                                answer
=====================================  ===========================================
handler returns a value                REPLY with the value's codec tag
handler returns ``None``               ERROR 404 ``resource '/x' is not handled``
handler raises                         ERROR 500 naming the exception's type (the
                                       traceback goes to the log)
handler raises a ``DataServeError``    ERROR with its status and message
payload tag with no codec              ERROR 415
payload that does not decode           ERROR 400 saying what is wrong
answer no codec can encode             ERROR 500
no answer within ``handler_timeout``   ERROR 504 (a ``def`` handler runs on, its
                                       thread replaced; its answer is dropped)
request during graceful shutdown       ERROR 503
still running when the shutdown grace  ERROR 503 (then the connection closes)
period ends
=====================================  ===========================================

Each of these keeps the connection open. Framing errors (a frame above
``max_frame_size``: 413; a bad preface: 400; a deadline: 408) are answered by
the protocol's error frame and close it (see ``rawproto.engine``); so is a
missing or wrong token when the service has one (401).

The path of a small request is short: the exchange starts as the request is
parsed, an ``async def`` handler that answers without suspending is answered
in that same call (no task is left behind), a ``def`` handler's call is a
future on the handler pool (no task either), and the REPLY's header is packed
straight from the outcome. A large answer leaves as its header and the
payload object itself, never copied. Handlers start only while the peer
takes its answers: the connection's output ``Gate`` (``rawproto.engine``)
holds back a ``def`` handler's call that reaches its thread while the
answers already queued are over the output cap.

With ``metrics`` (a ``dataserve.ops.TransportMetrics``), every answer is
recorded: resource, status, duration, payload bytes in and out. Without it
the answering path has no metering at all.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dataserve.core.codec import BYTES, Codec, CodecRegistry, default_registry
from dataserve.core.dispatch import Dispatcher
from dataserve.core.errors import UnsupportedMediaType
from dataserve.core.exchange import Exchange
from dataserve.core.handler import Caller
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.outcome import Outcome

from ..engine import Connection, Session
from ..proto.base import Role
from ..proto.native import Error, NativeConnection, Request

__all__ = ["NativeService", "NativeSession", "RequestMetrics"]

logger = logging.getLogger("rawproto.native")

_UNKNOWN: Any = object()  # a tag not seen yet

# A payload of this size or more leaves as its own buffer after the frame's
# header; a smaller one is joined to the header (one small copy, one buffer).
_JOIN_BELOW = 64 * 1024


class RequestMetrics(Protocol):
    """What answered requests are reported to (``dataserve.ops.TransportMetrics``)."""

    def observe(
        self, resource: str, status: int, duration: float, bytes_in: int, bytes_out: int
    ) -> None: ...


class NativeSession(Session):
    """One native-framing connection: requests overlap, answers carry their id."""

    concurrent = True

    def __init__(self, conn: Connection, service: NativeService) -> None:
        super().__init__(
            conn,
            NativeConnection(
                Role.SERVER, max_frame_size=service.limits.max_frame_size, token=service.token
            ),
        )
        self.service = service
        #: The requests being answered: id -> what ``Exchange.start`` returned.
        self.in_flight: dict[int, Awaitable[Any]] = {}
        self._abandoned = False

    def handle(self, event: object) -> Awaitable[Any] | None:
        if type(event) is Request:
            return self.service.respond(self, event)
        return None  # the preface or the token: nothing to answer

    def answer(self, request_id: int, outcome: Outcome) -> None:
        """Send a request's answer (unless it was answered 503 at the end of a shutdown)."""
        if self._abandoned:
            return
        in_flight = self.in_flight
        if in_flight:
            in_flight.pop(request_id, None)
        conn = self.conn
        if outcome.status == 200:
            body = outcome.body
            assert isinstance(self.proto, NativeConnection)
            head = self.proto.reply_head(request_id, outcome.media, len(body))
            if len(body) < _JOIN_BELOW:
                conn.write(head + body if body else head)
            else:  # the payload object itself goes to the transport, not a copy
                conn.write(head)
                conn.write(body)
            return
        if outcome.status == 503:
            logger.warning("request %d: %s", request_id, outcome.message)
        conn.send(Error(request_id, outcome.status, outcome.message))

    def abandoned(self) -> None:
        self._abandoned = True
        exchange = self.service.exchange
        for rid in sorted(self.in_flight):
            outcome = exchange.cut(self.in_flight[rid])  # type: ignore[arg-type]
            self.conn.send(Error(rid, outcome.status, outcome.message))
        self.in_flight.clear()


class NativeService:
    """The engine ``Service`` serving one data handler over the native framing.

    ``handler`` is what ``resolve_handler`` takes (an ``HTTPDataHandler``
    subclass or instance, a ``Router``, a ``fn(resource, payload)``).
    ``exchange`` is an already prepared one, so an HTTP app and this service
    share one handler instance and one thread pool (``DataEndpoint.exchange``);
    ``caller`` (an ``async`` ``caller(resource, payload)``) is served as an
    ``async def`` handler. A ``dispatcher`` passed in is not closed by
    ``aclose()``; one made here is. ``token`` (a string) makes every
    connection present it first (see ``rawproto.proto.native``); ``metrics``
    records every answer.
    """

    def __init__(
        self,
        handler: Any = None,
        *,
        caller: Caller | None = None,
        exchange: Exchange | None = None,
        limits: Limits | None = None,
        codecs: CodecRegistry | None = None,
        dispatcher: Dispatcher | None = None,
        token: str | None = None,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.limits = limits = limits or DEFAULT_LIMITS
        # JSON and msgpack payloads decode within these limits' budget
        # (max_structured_size, container lengths, depth): dataserve.core.budget.
        self.codecs = (codecs or default_registry).with_limits(limits)
        self.token = token.encode("utf-8") if token else None
        self.metrics = metrics
        if exchange is not None:
            self.dispatcher = exchange.dispatcher
            self._owns_dispatcher = False
        else:
            self._owns_dispatcher = dispatcher is None
            self.dispatcher = dispatcher or Dispatcher(
                limits.handler_threads, "rawproto-handler", limits.max_stuck_threads
            )
            if caller is not None:
                handler = _as_async(caller)
            elif handler is None:
                raise TypeError("NativeService needs a handler, an exchange or a caller")
            exchange = Exchange(handler, self.dispatcher, limits.handler_timeout)
        self.exchange = exchange
        self._encode = self.codecs.encode_tag
        self._decoders: dict[int, Callable[[bytes], Any] | None] = {}

    def session(self, conn: Connection) -> NativeSession:
        return NativeSession(conn, self)

    async def aclose(self) -> None:
        if self._owns_dispatcher:
            # Requests in flight have finished: the pool's threads just exit.
            self.dispatcher.close()

    # --- one request ------------------------------------------------------------

    def respond(self, session: NativeSession, request: Request) -> Awaitable[Any] | None:
        """Start answering ``request``; the awaitable is in flight until the answer is sent."""
        rid = request.request_id
        conn = session.conn
        if conn.closing:
            conn.send(Error(rid, 503, "the server is shutting down; send it again elsewhere"))
            return None
        tag = request.tag
        decode = self._decoders.get(tag, _UNKNOWN)
        if decode is _UNKNOWN:
            decode = self._decoder(tag)
        done: Callable[[Outcome], None] = functools.partial(session.answer, rid)
        if self.metrics is not None:
            done = self._metered(done, request)
        pending = self.exchange.start(
            request.resource, request.body, decode, self._encode, done, conn.gate
        )
        if pending is not None:
            session.in_flight[rid] = pending
        return pending

    def _decoder(self, tag: int) -> Callable[[bytes], Any] | None:
        """How a payload of codec ``tag`` is decoded (an unknown tag: 415 when it is);
        ``None`` for bytes, which are the payload as they are."""
        try:
            codec: Codec | None = self.codecs.for_tag(tag) if tag else None
        except UnsupportedMediaType:
            codec = None
        decode: Callable[[bytes], Any] | None
        if codec is not None and codec.media_type == BYTES:
            decode = None
        elif codec is None:
            decode = functools.partial(self.codecs.decode_tag, tag)
        else:

            def decode(body: bytes, _decode: Callable[..., Any] = codec.decode) -> Any:
                return _decode(body, {})

        if len(self._decoders) < 256:  # one per tag: bounded by the byte
            self._decoders[tag] = decode
        return decode

    def _metered(self, done: Callable[[Outcome], None], request: Request) -> Callable[..., None]:
        metrics, resource, size = self.metrics, request.resource, len(request.body)
        assert metrics is not None
        started = time.perf_counter()

        def answer(outcome: Outcome) -> None:
            done(outcome)
            out = len(outcome.body) if outcome.status == 200 else 0
            metrics.observe(resource, outcome.status, time.perf_counter() - started, size, out)

        return answer


def _as_async(caller: Caller) -> Callable[[str, Any], Awaitable[Any]]:
    async def call(resource: str, payload: Any) -> Any:
        return await caller(resource, payload)

    return call
