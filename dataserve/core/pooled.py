"""``def`` handlers' exchanges on the handler pool, and the gate that bounds their answers.

What ``dataserve.core.exchange`` runs on a handler thread for a ``def``
handler: decode, call and encode back to back (``_whole``), and how
``Exchange.start`` tracks such a call without a task (``Pooled``, a future
per call, ``PoolCall``), under the handler deadline, giving up on a stuck
thread (``HandlerPool.abandon``) and holding calls back while the
transport's ``Gate`` says its peer does not take its answers. Answers made
on threads count against the gate's ``cap`` until the loop has them: a
thread runs a whole batch of queued calls before the loop, waiting for the
GIL, sees the first answer, and without that count a peer that reads
nothing could have them all made.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from .deadlines import Deadline, Watchdogs
from .dispatch import Dispatcher
from .errors import CodecError, DataServeError
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

__all__ = [
    "HELD",
    "Decode",
    "Done",
    "Encode",
    "Gate",
    "PoolCall",
    "Pooled",
    "encoded",
    "raised",
    "whole",
]

logger = logging.getLogger("dataserve.handler")

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
HELD: Any = object()


def encoded(resource: str, result: Any, encode: Encode) -> Outcome:
    if result is None:
        return not_handled(resource)
    try:
        media, data = encode(result)
    except DataServeError as exc:
        logger.error("cannot encode the answer for %s: %s", resource, exc.message)
        return cannot_encode(resource, exc)
    return answered(media, data)


def raised(resource: str, exc: BaseException) -> Outcome:
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


def whole(
    resource: str,
    body: Any,
    decode: Decode,
    call: Callable[[Any], Any],
    encode: Encode,
    ticket: PoolCall | None = None,
) -> Outcome:
    """The exchange of a ``def`` handler, on its thread; with a ``ticket``
    (``Exchange.start``), ``HELD`` when its gate holds it back."""
    if ticket is not None and _held(ticket.gate):
        return HELD  # type: ignore[no-any-return]
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
        return raised(resource, exc)
    del payload
    return encoded(resource, result, encode)


class PoolCall(asyncio.Future):  # type: ignore[type-arg]
    """A ``def`` handler's exchange that ``start`` began, as the transport tracks it.

    ``job`` is its call on the pool now (a new one each time a gate held it
    back; ``None`` once answered), ``deadline`` the handler deadline; ``args`` what ``whole`` takes;
    ``answer`` the transport's ``done``; ``gate`` the transport's ``Gate``
    (``None``: none), and ``produced`` the size of the answer its thread made,
    until the loop has it.
    """

    __slots__ = ("answer", "args", "deadline", "gate", "job", "produced")
    args: tuple[Any, ...]
    deadline: Deadline
    answer: Done
    gate: Any
    job: asyncio.Future[Any] | None
    produced: int


class Pooled:
    """How ``Exchange.start`` runs ``def`` handlers: futures on the pool, no task."""

    def __init__(
        self, dispatcher: Dispatcher, handler_timeout: float, watchdogs: Watchdogs
    ) -> None:
        self.pool = dispatcher.pool
        self.timeout = handler_timeout
        self.watchdogs = watchdogs

    def start(self, args: tuple[Any, ...], done: Done, gate: Gate | None) -> PoolCall:
        loop = asyncio.get_running_loop()
        call = PoolCall(loop=loop)
        call.args, call.answer, call.gate, call.produced = args, done, gate, 0
        call.deadline = self.watchdogs.get(loop).call_later(self.timeout, self._expired, call)
        call.add_done_callback(self._ended)
        if gate is not None:
            gate.calls.add(call)
        self._submit(call)
        return call

    def _submit(self, call: PoolCall) -> None:
        ticket = call if call.gate is not None else None
        try:
            job = call.job = self.pool.submit(whole, *call.args, ticket)
        except RuntimeError:  # the pool is closed: the server has stopped
            self._finish(call, shut_down(False))
            return
        job.add_done_callback(functools.partial(self._returned, call))

    def _returned(self, call: PoolCall, job: asyncio.Future[Any]) -> None:
        if call.done() or job.cancelled():
            return  # answered already (504), or given up on
        exc = job.exception()
        if exc is not None:  # not from the handler (whole catches its errors)
            self._finish(call, raised(call.args[0], exc))
            return
        outcome = job.result()
        if outcome is HELD:
            call.gate.when_open(functools.partial(self._resume, call))
            return
        self._finish(call, outcome)

    def _resume(self, call: PoolCall) -> None:
        if not call.done():
            self._submit(call)

    def _finish(self, call: PoolCall, outcome: Outcome) -> None:
        call.deadline.stop()
        if call.gate is not None:
            call.gate.calls.discard(call)  # its answer is the transport's now
        call.args = ()  # the body may go
        call.job = None  # and the answer, which the job's result holds
        call.answer(outcome)
        call.set_result(None)

    def _expired(self, call: PoolCall) -> None:
        if call.done():
            return
        # The thread cannot be stopped: it is stuck, and replaced (HandlerPool.abandon).
        if call.job is not None:
            self.pool.abandon(call.job)
        logger.error("handler for %s did not answer in %g s", call.args[0], self.timeout)
        self._finish(call, timed_out(self.timeout))

    def _ended(self, call: asyncio.Future[Any]) -> None:
        if not call.cancelled():
            return
        # The transport gave up (its connection is gone): a call that has not
        # started never will; one running runs on, its answer is dropped.
        assert isinstance(call, PoolCall)
        call.deadline.stop()
        if call.gate is not None:
            call.gate.calls.discard(call)
        job = getattr(call, "job", None)
        if job is not None and not job.done() and not self.pool.started(job):
            job.cancel()

    def cut(self, call: PoolCall) -> Outcome:
        if call.gate is not None:
            call.gate.calls.discard(call)
        job = call.job
        started = job is not None and not job.done() and self.pool.started(job)
        if job is not None:
            self.pool.abandon(job)
        call.deadline.stop()
        return shut_down(started)
