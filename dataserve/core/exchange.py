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
hop costs more than decoding a few kilobytes.

The handler deadline (``handler_timeout``) covers the whole exchange. What
the request is answered, whatever happens, is ``dataserve.core.outcome``'s
policy. The transport supplies ``decode`` (body -> payload) and ``encode``
(value -> ``(media, body)``: a media type for HTTP, a codec tag for the
native framing) and turns the ``Outcome`` into bytes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from .deadlines import Watchdogs, resolution_for
from .dispatch import Dispatcher, is_async, is_inline
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

__all__ = ["OFFLOAD_FROM", "Exchange"]

logger = logging.getLogger("dataserve.handler")

#: Bodies (and answers) from this size on are decoded (encoded) off the loop.
OFFLOAD_FROM = 64 * 1024
# Containers longer than this are encoded off the loop for async handlers.
_LONG = 4096

Decode = Callable[[Any], Any]
Encode = Callable[[Any], tuple[Any, Any]]

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


def _whole(
    resource: str, body: Any, decode: Decode, call: Callable[[Any], Any], encode: Encode
) -> Outcome:
    """The exchange of a ``def`` handler, on its thread."""
    try:
        payload = decode(body)
    except CodecError as exc:
        return codec_failed(exc)
    del body  # the payload holds what it needs: let a large body go early
    try:
        result = call(payload)
    except Exception as exc:  # a handler's own TimeoutError included: a failure
        return _raised(resource, exc)
    del payload
    return _encoded(resource, result, encode)


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

    async def _on_loop(
        self,
        resource: str,
        body: Any,
        decode: Decode,
        call: Callable[[Any], Any],
        awaited: bool,
        encode: Encode,
    ) -> Outcome:
        large = len(body) >= OFFLOAD_FROM
        try:
            if large:
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
        if large:
            # Freeing a large decoded value (a million floats) is one long C
            # call: on a worker thread, not the loop (if the handler kept a
            # reference, nothing is freed at all).
            box = [payload]
            del payload
            asyncio.get_running_loop().run_in_executor(None, box.clear)
        else:
            del payload
        if _costly(result):
            return await asyncio.to_thread(_encoded, resource, result, encode)
        return _encoded(resource, result, encode)

    async def _unrouted(self, resource: str, body: Any, decode: Decode) -> Outcome:
        # A body that does not decode is a 400 whatever the path (as for a
        # routed one); only then is the path not handled.
        try:
            if len(body) >= OFFLOAD_FROM:
                await asyncio.to_thread(decode, body)
            else:
                decode(body)
        except CodecError as exc:
            return codec_failed(exc)
        return not_handled(resource)
