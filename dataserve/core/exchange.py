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
from typing import Any

from .deadlines import Deadline, Watchdogs, resolution_for
from .dispatch import Dispatcher, is_async, is_inline
from .eager import start_eagerly
from .errors import CodecError
from .handler import resolve_handler
from .outcome import Outcome, codec_failed, not_handled, shut_down, timed_out
from .pooled import Decode, Done, Encode, Gate, PoolCall, Pooled, encoded, raised, whole
from .routing import Router

__all__ = ["OFFLOAD_FROM", "Decode", "Done", "Encode", "Exchange", "Gate"]

logger = logging.getLogger("dataserve.handler")

#: Bodies (and answers) from this size on are decoded (encoded) off the loop.
OFFLOAD_FROM = 64 * 1024
# Containers longer than this are encoded off the loop for async handlers.
_LONG = 4096

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


def _free_off_loop(box: list[Any]) -> None:
    """Freeing a large decoded value (a million floats) is one long C call: on a
    worker thread, not the loop (if the handler kept a reference, nothing is
    freed at all). ``box`` holds the last reference the exchange had."""
    asyncio.get_running_loop().run_in_executor(None, box.clear)


def _unrouted_now(resource: str, body: Any, decode: Decode) -> Outcome:
    # A body that does not decode is a 400 whatever the path (as for a
    # routed one); only then is the path not handled.
    try:
        if decode is not None:
            decode(body)
    except CodecError as exc:
        return codec_failed(exc)
    return not_handled(resource)


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
        self._pooled = Pooled(dispatcher, handler_timeout, self._watchdogs)

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
                pending = self.dispatcher.pool.submit(whole, resource, body, decode, call, encode)
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
            holder: list[Deadline] = []
            coro = self._run(self._unrouted(resource, body, decode), resource, done, holder)
            return self._eager(coro, holder)
        call, kind = target
        if kind == _POOL:
            return self._pooled.start((resource, body, decode, call, encode), done, gate)
        holder = []
        return self._eager(
            self._run_on_loop(resource, body, decode, call, kind == _ASYNC, encode, done, holder),
            holder,
        )

    def cut(self, pending: asyncio.Future[Any] | None) -> Outcome:
        """The outcome for a started exchange still running when the shutdown grace
        period ended (503); a ``def`` handler's call is given up on."""
        if isinstance(pending, PoolCall) and not pending.done():
            return self._pooled.cut(pending)
        return shut_down(True)

    def _eager(
        self, coro: Coroutine[Any, Any, None], holder: list[Deadline]
    ) -> asyncio.Task[Any] | None:
        """Run ``coro`` as a task started at once; the handler deadline applies from
        its first suspension (nothing can interrupt a step that does not suspend),
        and ``coro`` finds it in ``holder``."""
        loop = asyncio.get_running_loop()
        task = start_eagerly(loop, coro)
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

    async def _run_on_loop(
        self,
        resource: str,
        body: Any,
        decode: Decode,
        call: Callable[[Any], Any],
        awaited: bool,
        encode: Encode,
        done: Done,
        deadline: list[Deadline],
    ) -> None:
        """``_run(_on_loop(...))`` in one coroutine: the path of every small request
        to an ``async def`` handler, so one frame less of it."""
        large = decode is not None and len(body) >= OFFLOAD_FROM
        try:
            try:
                if decode is None:
                    payload = body
                elif large:
                    payload = await asyncio.to_thread(decode, body)
                else:
                    payload = decode(body)
            except CodecError as exc:
                outcome = codec_failed(exc)
            else:
                del body
                try:
                    result = call(payload)
                    if awaited:
                        result = await result
                except Exception as exc:
                    outcome = raised(resource, exc)
                else:
                    if large:
                        box = [payload]
                        del payload
                        _free_off_loop(box)
                    else:
                        del payload
                    if _costly(result):
                        outcome = await asyncio.to_thread(encoded, resource, result, encode)
                    else:
                        outcome = encoded(resource, result, encode)
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
        # Only a decoded value can be costly to free (bytes are one block).
        large = decode is not None and len(body) >= OFFLOAD_FROM
        try:
            if decode is None:
                payload = body
            elif large:
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
            return raised(resource, exc)
        if large:
            box = [payload]
            del payload
            _free_off_loop(box)
        else:
            del payload
        if _costly(result):
            return await asyncio.to_thread(encoded, resource, result, encode)
        return encoded(resource, result, encode)

    async def _unrouted(self, resource: str, body: Any, decode: Decode) -> Outcome:
        if decode is not None and len(body) >= OFFLOAD_FROM:
            return await asyncio.to_thread(_unrouted_now, resource, body, decode)
        return _unrouted_now(resource, body, decode)
