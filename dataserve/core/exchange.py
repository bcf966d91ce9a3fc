"""One request, from body to answer: decode, call the handler, encode, each where it belongs.

The event loop only moves bytes. Decoding a body and encoding an answer are
CPU work proportional to their size (a 30 MB JSON body of empty lists holds
a loop for seconds), so:

* a ``def`` handler (on the ``HandlerPool``) gets the whole exchange on its
  thread: decode, the call and encode run there back to back, one hop;
* an ``async def`` or ``@inline`` handler runs on the loop, and a body of
  ``OFFLOAD_FROM`` bytes or more is decoded on a worker thread first; an
  answer that may be costly to encode (a long ``str``, a large container or
  array) is encoded on one too.

Small bodies are decoded on the loop for an ``async def`` handler: a thread
hop costs more than decoding a few kilobytes. A transport whose body is the
payload as it is (``application/octet-stream``: nothing to decode) passes
``decode=None``, and no body of any size hops to a thread for it.

The handler deadline (``handler_timeout``) covers the whole exchange. What
the request is answered, whatever happens, is ``dataserve.core.outcome``'s
policy. The transport supplies ``decode`` (body -> payload) and ``encode``
(value -> ``(media, body)``: a media type for HTTP, a codec tag for the
native framing) and turns the ``Outcome`` into bytes.

Two ways in, one policy:

* ``await exchange.answer(...)``, from a task the transport already runs
  (HTTP: the ASGI request's task);
* ``exchange.start(..., done)``, for a transport that answers many small
  requests and owns no task per request (the native framing): ``done(outcome)``
  is called on the loop, and nothing is created that the handler does not
  need. A ``def`` handler's exchange is a future on the pool, with no task;
  an ``async def`` handler runs as a task whose first step runs at once
  (``dataserve.core.eager``), so one that answers without suspending is done
  before ``start`` returns, and is put under the handler deadline only if it
  suspends. ``start`` also takes a ``Gate``: a transport whose peer stops
  reading its answers shuts it, and a ``def`` handler call that reaches its
  thread while it is shut waits, unstarted, until it opens (what bounds the
  answers a peer that reads nothing can make the server hold).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from .deadlines import Deadline, Watchdogs, resolution_for
from .dispatch import Dispatcher, is_async, is_inline
from .eager import start_eagerly
from .errors import CodecError, DataServeError
from .handler import resolve_handler
from .outcome import (
    Outcome,
    answered,
    cannot_encode,
    codec_failed,
    handler_raised,
    not_handled,
    shut_down,
    timed_out,
)
from .routing import Router

__all__ = ["OFFLOAD_FROM", "Done", "Exchange", "Gate"]

logger = logging.getLogger("dataserve.handler")

#: Bodies (and answers) from this size on are decoded (encoded) off the loop.
OFFLOAD_FROM = 64 * 1024
# Containers longer than this are encoded off the loop for async handlers.
_LONG = 4096

#: body -> payload; ``None``: the body is the payload, as it is.
Decode = Callable[[Any], Any] | None
Encode = Callable[[Any], tuple[Any, Any]]
#: Called once, on the loop, with a started exchange's outcome.
Done = Callable[[Outcome], None]


class Gate(Protocol):
    """Whether a connection's handlers may start now (its peer takes its answers).

    ``open`` is the transport's word (its output is under the cap); ``cap``
    bounds the answers ``def`` handlers made on their threads that have not
    reached the transport yet (a thread may run many calls before the loop
    sees the first answer); ``calls`` is the exchange's own record of those
    calls, kept on the loop.
    """

    @property
    def open(self) -> bool:
        """Read on the handler threads, just before a ``def`` handler's call."""
        ...

    @property
    def cap(self) -> int:
        """Bytes of answers that may wait for the transport."""
        ...

    calls: set[Any]

    def when_open(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop once the gate is open again."""
        ...


# What a def handler's exchange returns when its gate was shut: nothing ran.
_HELD: Any = object()

_POOL, _ASYNC, _INLINE = 0, 1, 2


def _kind(fn: Callable[..., Any]) -> int:
    if is_async(fn):
        return _ASYNC
    return _INLINE if is_inline(fn) else _POOL


def _costly(value: Any) -> bool:
    """Whether encoding ``value`` may hold the loop (a guess from its size)."""
    cls = type(value)
    if cls is bytes:
        return False  # sent as it is
    if cls is str or cls is bytearray or cls is memoryview:
        return len(value) >= OFFLOAD_FROM
    if cls is list or cls is dict or cls is tuple:
        return len(value) >= _LONG
    nbytes = getattr(value, "nbytes", None)  # numpy arrays
    return isinstance(nbytes, int) and nbytes >= OFFLOAD_FROM


def _encoded(resource: str, result: Any, encode: Encode) -> Outcome:
    if result is None:
        return not_handled(resource)
    try:
        media, data = encode(result)
    except DataServeError as exc:
        logger.error("cannot encode the answer for %s: %s", resource, exc.message)
        return cannot_encode(resource, exc)
    return answered(media, data)


def _raised(resource: str, exc: BaseException) -> Outcome:
    if not isinstance(exc, DataServeError):
        logger.error("handler raised for %s", resource, exc_info=exc)
    return handler_raised(resource, exc)


def _held(gate: Gate) -> bool:
    """On a handler thread: the transport is over its cap, or answers made on the
    threads and not yet with it would take it there."""
    if not gate.open:
        return True
    waiting = 0
    for call in list(gate.calls):  # a copy: the loop changes the set meanwhile
        waiting += call.produced
    return waiting >= gate.cap


def _whole(
    resource: str,
    body: Any,
    decode: Decode,
    call: Callable[[Any], Any],
    encode: Encode,
    ticket: _PoolCall | None = None,
) -> Outcome:
    """The exchange of a ``def`` handler, on its thread; with a ``ticket``
    (``Exchange.start``), ``_HELD`` when its gate holds it back."""
    if ticket is not None and _held(ticket.gate):
        return _HELD  # type: ignore[no-any-return]
    outcome = _exchange(resource, body, decode, call, encode)
    if ticket is not None and outcome.status == 200:
        ticket.produced = len(outcome.body)  # counts against the gate's cap until delivered
    return outcome


def _exchange(
    resource: str, body: Any, decode: Decode, call: Callable[[Any], Any], encode: Encode
) -> Outcome:
    try:
        payload = decode(body) if decode is not None else body
    except CodecError as exc:
        return codec_failed(exc)
    del body  # the payload holds what it needs: let a large body go early
    try:
        result = call(payload)
    except Exception as exc:  # a handler's own TimeoutError included: a failure
        return _raised(resource, exc)
    del payload
    return _encoded(resource, result, encode)


def _unrouted_now(resource: str, body: Any, decode: Decode) -> Outcome:
    # A body that does not decode is a 400 whatever the path (as for a
    # routed one); only then is the path not handled.
    try:
        if decode is not None:
            decode(body)
    except CodecError as exc:
        return codec_failed(exc)
    return not_handled(resource)


class _PoolCall(asyncio.Future):  # type: ignore[type-arg]
    """A ``def`` handler's exchange that ``start`` began, as the transport tracks it.

    ``job`` is its call on the pool now (a new one each time a gate held it
    back), ``deadline`` the handler deadline; ``args`` what ``_whole`` takes;
    ``answer`` the transport's ``done``; ``gate`` the transport's ``Gate``
    (``None``: none), and ``produced`` the size of the answer its thread made,
    until the loop has it.
    """

    __slots__ = ("answer", "args", "deadline", "gate", "job", "produced")
    args: tuple[Any, ...]
    deadline: Deadline
    answer: Done
    gate: Any
    job: asyncio.Future[Any]
    produced: int


class _Pooled:
    """How ``Exchange.start`` runs ``def`` handlers: futures on the pool, no task."""

    def __init__(
        self, dispatcher: Dispatcher, handler_timeout: float, watchdogs: Watchdogs
    ) -> None:
        self.pool = dispatcher.pool
        self.timeout = handler_timeout
        self.watchdogs = watchdogs

    def start(self, args: tuple[Any, ...], done: Done, gate: Gate | None) -> _PoolCall:
        loop = asyncio.get_running_loop()
        call = _PoolCall(loop=loop)
        call.args, call.answer, call.gate, call.produced = args, done, gate, 0
        call.deadline = self.watchdogs.get(loop).call_later(self.timeout, self._expired, call)
        call.add_done_callback(self._ended)
        if gate is not None:
            gate.calls.add(call)
        self._submit(call)
        return call

    def _submit(self, call: _PoolCall) -> None:
        ticket = call if call.gate is not None else None
        try:
            job = call.job = self.pool.submit(_whole, *call.args, ticket)
        except RuntimeError:  # the pool is closed: the server has stopped
            self._finish(call, shut_down(False))
            return
        job.add_done_callback(functools.partial(self._returned, call))

    def _returned(self, call: _PoolCall, job: asyncio.Future[Any]) -> None:
        if call.done() or job.cancelled():
            return  # answered already (504), or given up on
        exc = job.exception()
        if exc is not None:  # not from the handler (_whole catches its errors)
            self._finish(call, _raised(call.args[0], exc))
            return
        outcome = job.result()
        if outcome is _HELD:
            call.gate.when_open(functools.partial(self._resume, call))
            return
        self._finish(call, outcome)

    def _resume(self, call: _PoolCall) -> None:
        if not call.done():
            self._submit(call)

    def _finish(self, call: _PoolCall, outcome: Outcome) -> None:
        call.deadline.stop()
        if call.gate is not None:
            call.gate.calls.discard(call)  # its answer is the transport's now
        call.args = ()  # the body may go
        call.answer(outcome)
        call.set_result(None)

    def _expired(self, call: _PoolCall) -> None:
        if call.done():
            return
        # The thread cannot be stopped: it is stuck, and replaced (HandlerPool.abandon).
        self.pool.abandon(call.job)
        logger.error("handler for %s did not answer in %g s", call.args[0], self.timeout)
        self._finish(call, timed_out(self.timeout))

    def _ended(self, call: asyncio.Future[Any]) -> None:
        if not call.cancelled():
            return
        # The transport gave up (its connection is gone): a call that has not
        # started never will; one running runs on, its answer is dropped.
        assert isinstance(call, _PoolCall)
        call.deadline.stop()
        if call.gate is not None:
            call.gate.calls.discard(call)
        job = getattr(call, "job", None)
        if job is not None and not job.done() and not self.pool.started(job):
            job.cancel()

    def cut(self, call: _PoolCall) -> Outcome:
        if call.gate is not None:
            call.gate.calls.discard(call)
        job = call.job
        started = not job.done() and self.pool.started(job)
        self.pool.abandon(job)
        call.deadline.stop()
        return shut_down(started)


class Exchange:
    """Answers requests for one handler by its calling policy (see the module docstring).

    ``handler`` is what ``resolve_handler`` takes (an ``HTTPDataHandler``
    subclass or instance, a ``Router``, a ``fn(resource, payload)``); ``def``
    handlers run on ``dispatcher``'s pool.
    """

    def __init__(self, handler: Any, dispatcher: Dispatcher, handler_timeout: float) -> None:
        target = resolve_handler(handler)
        self.dispatcher = dispatcher
        self.handler_timeout = handler_timeout
        self._router: Router[Any] | None = None
        self._plain: tuple[Callable[..., Any], int] | None = None
        if isinstance(target, Router):
            self._router = target
        else:
            self._plain = (target, _kind(target))
        self._kinds: dict[int, int] = {}
        # Deadlines fire at most a quarter of the timeout late (0.25 s at most).
        self._watchdogs = Watchdogs(resolution_for(handler_timeout))
        self._pooled = _Pooled(dispatcher, handler_timeout, self._watchdogs)

    def _target(self, resource: str) -> tuple[Callable[[Any], Any], int] | None:
        if self._plain is not None:
            fn, kind = self._plain
            return functools.partial(fn, resource), kind
        assert self._router is not None
        match = self._router.match(resource)
        if match is None:
            return None
        endpoint = match.endpoint
        found = self._kinds.get(id(endpoint))
        kind = found if found is not None else self._kinds.setdefault(id(endpoint), _kind(endpoint))
        return functools.partial(endpoint, **match.params), kind

    async def answer(self, resource: str, body: Any, decode: Decode, encode: Encode) -> Outcome:
        """The outcome of ``body`` sent to ``resource``; never raises but ``CancelledError``
        from a task that is cancelled twice."""
        target = self._target(resource)
        if target is None:
            return await self._unrouted(resource, body, decode)
        call, kind = target
        deadline = self._watchdogs.get().start(self.handler_timeout)
        pending: asyncio.Future[Any] | None = None
        try:
            if kind == _POOL:
                pending = self.dispatcher.pool.submit(_whole, resource, body, decode, call, encode)
                del body
                outcome: Outcome = await pending
                return outcome
            return await self._on_loop(resource, body, decode, call, kind == _ASYNC, encode)
        except asyncio.CancelledError:
            pool = self.dispatcher.pool
            if deadline.owns():
                if pending is not None:
                    pool.abandon(pending)
                logger.error(
                    "handler for %s did not answer in %g s", resource, self.handler_timeout
                )
                return timed_out(self.handler_timeout)
            # Cancelled by someone else: the server's shutdown grace period is
            # over. Answer for the request instead of leaving it to a 500.
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            started = pending is None or pool.started(pending)
            if pending is not None:
                pool.abandon(pending)
            return shut_down(started)
        finally:
            deadline.stop()

    def start(
        self,
        resource: str,
        body: Any,
        decode: Decode,
        encode: Encode,
        done: Done,
        gate: Gate | None = None,
    ) -> asyncio.Future[Any] | None:
        """Begin answering ``body`` sent to ``resource``; ``done(outcome)`` is called
        once, on the loop, maybe before this returns.

        Returns ``None`` once ``done`` has been called, else what still runs: a
        task (an ``async def`` handler that suspended) or a future (a ``def``
        handler's call on the pool), done once ``done`` has been called.
        Cancelling it (the connection is gone) drops the answer: ``done`` is
        not called, and a call that has not started never does.
        ``cut(pending)`` answers for it when the shutdown grace period is over.
        """
        target = self._target(resource)
        if target is None:
            if decode is None or len(body) < OFFLOAD_FROM:
                done(_unrouted_now(resource, body, decode))
                return None
            return self._eager(self._unrouted(resource, body, decode), resource, done)
        call, kind = target
        if kind == _POOL:
            return self._pooled.start((resource, body, decode, call, encode), done, gate)
        coro = self._on_loop(resource, body, decode, call, kind == _ASYNC, encode)
        return self._eager(coro, resource, done)

    def cut(self, pending: asyncio.Future[Any] | None) -> Outcome:
        """The outcome for a started exchange still running when the shutdown grace
        period ended (503); a ``def`` handler's call is given up on."""
        if isinstance(pending, _PoolCall) and not pending.done():
            return self._pooled.cut(pending)
        return shut_down(True)

    def _eager(
        self, coro: Coroutine[Any, Any, Outcome], resource: str, done: Done
    ) -> asyncio.Task[Any] | None:
        """Run ``coro`` as a task started at once; the handler deadline applies from
        its first suspension (nothing can interrupt a step that does not suspend)."""
        holder: list[Deadline] = []
        loop = asyncio.get_running_loop()
        task = start_eagerly(loop, self._run(coro, resource, done, holder))
        if task is None:
            return None
        deadline = self._watchdogs.get(loop).start(self.handler_timeout, task)
        holder.append(deadline)
        task.add_done_callback(lambda _: deadline.stop())  # however the task ended
        return task

    async def _run(
        self,
        coro: Coroutine[Any, Any, Outcome],
        resource: str,
        done: Done,
        deadline: list[Deadline],
    ) -> None:
        try:
            outcome = await coro
        except asyncio.CancelledError:
            if not deadline or not deadline[0].owns():
                raise  # cancelled by someone else: the connection is gone
            logger.error("handler for %s did not answer in %g s", resource, self.handler_timeout)
            outcome = timed_out(self.handler_timeout)
        finally:
            if deadline:
                deadline[0].stop()
        done(outcome)

    async def _on_loop(
        self,
        resource: str,
        body: Any,
        decode: Decode,
        call: Callable[[Any], Any],
        awaited: bool,
        encode: Encode,
    ) -> Outcome:
        try:
            if decode is None:
                payload = body
            elif len(body) >= OFFLOAD_FROM:
                payload = await asyncio.to_thread(decode, body)
            else:
                payload = decode(body)
        except CodecError as exc:
            return codec_failed(exc)
        del body
        try:
            result = call(payload)
            if awaited:
                result = await result
        except Exception as exc:
            return _raised(resource, exc)
        del payload
        if _costly(result):
            return await asyncio.to_thread(_encoded, resource, result, encode)
        return _encoded(resource, result, encode)

    async def _unrouted(self, resource: str, body: Any, decode: Decode) -> Outcome:
        if decode is not None and len(body) >= OFFLOAD_FROM:
            return await asyncio.to_thread(_unrouted_now, resource, body, decode)
        return _unrouted_now(resource, body, decode)
