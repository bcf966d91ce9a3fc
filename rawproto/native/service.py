"""Serving an ``HTTPDataHandler`` over the native framing, on the engine.

The same handler that ``dataserve.run_http_server`` serves, through the same
codec and the same calling policy (``dataserve.core.handler.make_caller``:
``async def`` on the loop, ``def`` on the dispatcher's thread pool), with the
same meanings:

=====================================  ===========================================
request                                answer
=====================================  ===========================================
handler returns a value                REPLY with the value's codec tag
handler returns ``None``               ERROR 404 ``resource '/x' is not handled``
handler raises                         ERROR 500 (logged with its traceback)
payload tag with no codec              ERROR 415
payload that does not decode           ERROR 400 saying what is wrong
answer no codec can encode             ERROR 500
no answer within ``handler_timeout``   ERROR 504 (a ``def`` handler runs on; its
                                       answer is dropped)
request during graceful shutdown       ERROR 503
still running when the shutdown grace  ERROR 503 (then the connection closes)
period ends
=====================================  ===========================================

Each of these keeps the connection open. Framing errors (a frame above
``max_frame_size``: 413; a bad preface: 400; a deadline: 408) are answered by
the protocol's error frame and close it (see ``rawproto.engine``); so is a
missing or wrong token when the service has one (401).

With ``metrics`` (a ``dataserve.ops.TransportMetrics``), every answer is
recorded: resource, status, duration, payload bytes in and out. Without it
the answering path has no metering at all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import Any, Protocol

from dataserve.core.codec import CodecRegistry, default_registry
from dataserve.core.deadlines import Deadline, Watchdogs, resolution_for
from dataserve.core.dispatch import Dispatcher
from dataserve.core.errors import CodecError, DataServeError
from dataserve.core.handler import Caller, make_caller
from dataserve.core.limits import DEFAULT_LIMITS, Limits

from ..engine import Connection, Session
from ..proto.base import Role
from ..proto.native import Error, NativeConnection, Reply, Request, trusted_reply
from .eager import start_eagerly

__all__ = ["NativeService", "NativeSession", "RequestMetrics"]

logger = logging.getLogger("rawproto.native")

#: Sends one request's answer (``conn.send``, or a wrapper that meters it).
Answer = Callable[[Reply | Error], None]


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
        #: Ids of the requests being answered (for ``abandoned``).
        self.in_flight: set[int] = set()
        self._abandoned = False

    def handle(self, event: object) -> Awaitable[Any] | None:
        if type(event) is Request:
            self.in_flight.add(event.request_id)
            return self.service.respond(self.conn, event, self.send_answer)
        return None  # the preface or the token: nothing to answer

    def send_answer(self, event: Reply | Error) -> None:
        """Send a request's answer (unless it was answered 503 at the end of a shutdown)."""
        if self._abandoned:
            return
        self.in_flight.discard(event.request_id)
        self.conn.send(event)

    def abandoned(self) -> None:
        self._abandoned = True
        for rid in sorted(self.in_flight):
            self.conn.send(
                Error(rid, 503, "the server shut down before the handler answered; send it again")
            )
        self.in_flight.clear()


class NativeService:
    """The engine ``Service`` serving one data handler over the native framing.

    ``handler`` is anything ``make_caller`` takes (an ``HTTPDataHandler``
    subclass or instance, a ``Router``, a ``fn(resource, payload)``);
    ``caller`` is an already prepared one, so an HTTP app and this service can
    share one handler instance and one thread pool. A ``dispatcher`` passed in
    is not closed by ``aclose()``; one made here is. ``token`` (a string)
    makes every connection present it first (see ``rawproto.proto.native``);
    ``metrics`` records every answer.
    """

    def __init__(
        self,
        handler: Any = None,
        *,
        caller: Caller | None = None,
        limits: Limits | None = None,
        codecs: CodecRegistry | None = None,
        dispatcher: Dispatcher | None = None,
        token: str | None = None,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self.codecs = codecs or default_registry
        self.token = token.encode("utf-8") if token else None
        self.metrics = metrics
        self._owns_dispatcher = dispatcher is None and caller is None
        self.dispatcher = dispatcher or Dispatcher(self.limits.handler_threads, "rawproto-handler")
        if caller is None:
            if handler is None:
                raise TypeError("NativeService needs a handler or a caller")
            caller = make_caller(handler, self.dispatcher)
        self._call = caller
        # Handler deadlines fire at most a quarter of the timeout late (0.25 s at most).
        self._watchdogs = Watchdogs(resolution_for(self.limits.handler_timeout))

    def session(self, conn: Connection) -> NativeSession:
        return NativeSession(conn, self)

    async def aclose(self) -> None:
        if self._owns_dispatcher:
            # Requests in flight have finished: the pool's threads just exit.
            self.dispatcher.close()

    # --- one request ------------------------------------------------------------

    def respond(
        self, conn: Connection, request: Request, send: Answer | None = None
    ) -> Awaitable[Any] | None:
        """Start answering ``request``; the awaitable is in flight until the answer is sent.

        The answer goes out through ``send`` (default ``conn.send``).
        """
        send = send or conn.send
        metrics = self.metrics
        if metrics is None:
            return self._respond(conn, request, send)
        resource, size = request.resource, len(request.body)
        started = time.perf_counter()

        def answer(event: Reply | Error) -> None:
            send(event)
            if type(event) is Reply:
                status, out = 200, len(event.body)
            else:
                status, out = event.code, 0  # type: ignore[union-attr]
            metrics.observe(resource, status, time.perf_counter() - started, size, out)

        return self._respond(conn, request, answer)

    def _respond(self, conn: Connection, request: Request, answer: Answer) -> Awaitable[Any] | None:
        rid, resource = request.request_id, request.resource
        if conn.closing:
            answer(Error(rid, 503, "the server is shutting down; send it again elsewhere"))
            return None
        try:
            payload = self.codecs.decode_tag(request.tag, request.body)
        except CodecError as exc:
            answer(Error(rid, exc.status, exc.message))
            return None
        try:
            pending = self._call(resource, payload)
        except Exception as exc:  # the pool is closed, or a router endpoint failed to start
            self._raised(answer, rid, resource, exc)
            return None
        if type(pending) is CoroutineType:
            # An async def handler: most answer without awaiting, in this very
            # call (see rawproto.native.eager), and need no deadline (nothing could
            # interrupt them); one that suspends goes on as a task, under one.
            holder: list[Deadline] = []
            task = start_eagerly(conn.loop, self._awaited(answer, rid, resource, pending, holder))
            if task is not None:
                self._guard(conn, task, holder)
            return task
        if isinstance(pending, asyncio.Future):
            # A def handler on the pool: finish in a callback, no task needed.
            done: asyncio.Future[None] = conn.loop.create_future()
            deadline = self._watchdogs.get(conn.loop).call_later(
                self.limits.handler_timeout, self._expired, answer, rid, resource, done
            )
            pending.add_done_callback(
                functools.partial(self._pooled, answer, rid, resource, done, deadline)
            )
            return done
        holder = []
        task = conn.loop.create_task(self._awaited(answer, rid, resource, pending, holder))
        self._guard(conn, task, holder)
        return task

    def _guard(self, conn: Connection, task: asyncio.Task[Any], holder: list[Deadline]) -> None:
        """Put ``task`` (a handler that suspended) under the handler deadline."""
        deadline = self._watchdogs.get(conn.loop).start(self.limits.handler_timeout, task)
        holder.append(deadline)
        task.add_done_callback(lambda _: deadline.stop())  # however the task ended

    def _pooled(
        self,
        answer: Answer,
        rid: int,
        resource: str,
        done: asyncio.Future[None],
        deadline: Deadline,
        pending: asyncio.Future[Any],
    ) -> None:
        deadline.stop()
        if done.done():
            return  # answered 504 already: the late result is dropped
        if not pending.cancelled():
            exc = pending.exception()
            if exc is None:
                self._answer(answer, rid, resource, pending.result())
            else:
                self._raised(answer, rid, resource, exc)
        done.set_result(None)

    def _expired(self, answer: Answer, rid: int, resource: str, done: asyncio.Future[None]) -> None:
        # A def handler's thread cannot be stopped: it runs on, its answer is dropped.
        if not done.done():
            self._timed_out(answer, rid, resource)
            done.set_result(None)

    async def _awaited(
        self,
        answer: Answer,
        rid: int,
        resource: str,
        pending: Awaitable[Any],
        deadline: list[Deadline],
    ) -> None:
        """Answer what ``pending`` returns; ``deadline`` holds the handler deadline once
        the task has one (from its first suspension on)."""
        try:
            result = await pending
        except asyncio.CancelledError:
            if not deadline or not deadline[0].owns():
                raise  # cancelled by someone else: the connection is gone
            self._timed_out(answer, rid, resource)
            return
        except Exception as exc:
            self._raised(answer, rid, resource, exc)
            return
        finally:
            if deadline:
                deadline[0].stop()
        self._answer(answer, rid, resource, result)

    def _timed_out(self, answer: Answer, rid: int, resource: str) -> None:
        timeout = self.limits.handler_timeout
        logger.error("handler for %s did not answer in %g s", resource, timeout)
        answer(Error(rid, 504, f"the handler did not answer within {timeout:g} s"))

    def _raised(self, answer: Answer, rid: int, resource: str, exc: BaseException) -> None:
        logger.error("handler raised for %s", resource, exc_info=exc)
        answer(
            Error(
                rid,
                500,
                f"the handler raised {type(exc).__name__} for {resource} (see the server log)",
            )
        )

    def _answer(self, answer: Answer, rid: int, resource: str, result: Any) -> None:
        if result is None:
            answer(Error(rid, 404, f"resource {resource!r} is not handled"))
            return
        try:
            tag, body = self.codecs.encode_tag(result)
        except DataServeError as exc:
            logger.error("cannot encode the answer for %s: %s", resource, exc.message)
            answer(
                Error(
                    rid, 500, f"the handler's answer for {resource} cannot be sent: {exc.message}"
                )
            )
            return
        # The id came from the peer's frame, the tag from a registered codec.
        answer(trusted_reply(rid, tag, body))
