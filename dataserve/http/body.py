"""A request's body between the socket and the app, and the policy for taking it.

The connection hands the body over as it arrives (the parser's pieces, or
socket reads straight into the body's own buffer); the app takes it through
its cycle (``dataserve.http.cycle``) in one of two ways:

* **streamed** (plain ASGI ``receive()``): pieces as they arrive, reading
  paused (``BODY``) while more than ``STREAM_HIGH_WATER`` bytes wait for the
  app;
* **whole** (``want_whole``): into one buffer of the announced length
  (``dataserve.core.buffers``), which the connection's socket reads fill
  directly (``reading_into``, ``read_into``); a chunked body grows one
  buffer, and a small one is kept as its pieces and joined at most once. A
  body that crosses ``max_size``, or that stalls for ``timeout`` seconds,
  fails ("too_large", "stalled"): what it held is dropped and nothing more is
  read (``REFUSED``).

Once the request is answered or the connection is gone, the body is closed:
its buffers are released and whatever still arrives is dropped.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

from ..core.buffer_cache import BufferCache
from ..core.buffers import BodyBuffer
from ..core.deadlines import Deadline, Watchdog
from .flow import BODY, REFUSED, ReadFlow

__all__ = ["STREAM_HIGH_WATER", "WHOLE_BUFFER_FROM", "RequestBody"]

logger = logging.getLogger("uvicorn.error")

#: A streamed body waiting for the app above this pauses reading (uvicorn's mark).
STREAM_HIGH_WATER = 64 * 1024
#: A whole body this large or larger is read into one buffer of its length;
#: a smaller one comes in a piece or two and is kept as it comes.
WHOLE_BUFFER_FROM = 64 * 1024

_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}


class RequestBody:
    """One request's body: what has arrived, how the app takes it, and its limits."""

    __slots__ = (
        "_cache",
        "_deadline",
        "_delivered",
        "_pending",
        "_pending_size",
        "_read_flow",
        "_sink",
        "_watchdog",
        "closed",
        "event",
        "failure",
        "length",
        "max_size",
        "more_body",
        "received",
        "timeout",
        "whole",
    )

    def __init__(
        self,
        read_flow: ReadFlow,
        watchdog: Watchdog,
        *,
        length: int | None,
        has_body: bool,
        cache: BufferCache | None = None,
    ) -> None:
        self._read_flow = read_flow
        self._cache = cache
        self._watchdog = watchdog
        #: The announced length (``None``: chunked or none).
        self.length = length
        #: More of the body is still to come from the peer.
        self.more_body = has_body
        self.received = 0
        #: Set when there is news for an app waiting to take the body.
        self.event = asyncio.Event()
        #: The request is answered or the connection is gone: nobody takes the body.
        self.closed = False
        self.whole = False
        self.max_size = 0
        self.timeout = 0.0
        #: Why the whole body cannot be delivered: "too_large" or "stalled".
        self.failure: str | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._sink: BodyBuffer | io.BytesIO | None = None
        self._deadline: Deadline | None = None
        self._delivered = False

    # --- from the connection ------------------------------------------------------

    def on_body(self, chunk: bytes) -> None:
        if self.closed or self.failure is not None:
            return  # answered already (or refused): the rest is dropped
        self.received += len(chunk)
        sink = self._sink
        if sink is None:
            # Kept as they come: one piece (a small body) is handed on as it is.
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if not self.whole:
                if self._pending_size > STREAM_HIGH_WATER:
                    self._read_flow.hold(BODY)
                self.event.set()
            return
        if self.received > self.max_size:
            self._fail("too_large")
            return
        sink.write(chunk)
        if self._deadline is not None:
            self._deadline.restart(self.timeout)

    def on_message_complete(self) -> None:
        self.more_body = False
        self._stop_deadline()
        self.event.set()

    def reading_into(self) -> BodyBuffer | None:
        """The buffer the next socket read may fill directly, if any."""
        sink = self._sink
        if type(sink) is BodyBuffer and not sink.complete and self.failure is None:
            return sink
        return None

    def read_into(self, n: int) -> None:
        """``n`` bytes were read into ``reading_into()``'s buffer."""
        sink = self._sink
        assert type(sink) is BodyBuffer
        sink.advance(n)
        self.received += n
        if self._deadline is not None:
            self._deadline.restart(self.timeout)

    def close(self) -> None:
        """Nobody will take the body any more: the request is answered, or the connection gone."""
        self.closed = True
        self.drop()
        self.event.set()

    def drop(self) -> None:
        """Release what the body holds (its buffer, its pieces, its deadline)."""
        self._stop_deadline()
        sink, self._sink = self._sink, None
        if type(sink) is BodyBuffer:
            sink.discard()
        self._pending, self._pending_size = [], 0

    # --- to the app -----------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The next ASGI message for the app: what has arrived, or the whole body."""
        if self.whole:
            return await self.receive_whole()
        if not self.closed:
            self._read_flow.release(BODY)
            await self.event.wait()
            self.event.clear()
        if self.closed:
            return _DISCONNECT
        return {"type": "http.request", "body": self._take_pending(), "more_body": self.more_body}

    async def receive_whole(self) -> dict[str, Any]:
        """The whole body in one message, once it is all in (or why it cannot be)."""
        while not (
            self.closed or self.failure is not None or (not self.more_body and not self._delivered)
        ):
            await self.event.wait()
            self.event.clear()
        if self.closed:
            return _DISCONNECT
        if self.failure is not None:
            return {"type": f"dataserve.body_{self.failure}", "received": self.received}
        self._delivered = True
        sink, self._sink = self._sink, None
        if sink is None:
            body = self._take_pending()
        elif type(sink) is BodyBuffer:
            body = sink.finish() if sink.complete else b""
        else:
            body = sink.getvalue()  # type: ignore[union-attr]
        return {"type": "http.request", "body": body, "more_body": False}

    def want_whole(self, max_size: int, timeout: float) -> None:
        """From now on the body is taken whole, within ``max_size`` and ``timeout``."""
        if self.whole:
            return
        self.whole = True
        self.max_size = max_size
        self.timeout = timeout
        length = self.length
        if (length is not None and length > self.max_size) or self.received > self.max_size:
            self._fail("too_large")
            return
        self._read_flow.release(BODY)
        if not self.more_body:
            return  # all here already: handed on as it came
        if length is not None and length < WHOLE_BUFFER_FROM:
            # A small body is a piece or two: kept as it comes, joined at most once.
            if self.timeout:
                self._deadline = self._watchdog.call_later(self.timeout, self._stalled)
            return
        try:
            sink = self._sink = (
                BodyBuffer(length, self._cache) if length is not None else io.BytesIO()
            )
        except MemoryError:
            logger.error("no memory for a request body of %s bytes", length)
            self._fail("too_large")
            return
        for piece in self._pending:
            sink.write(piece)
        self._pending, self._pending_size = [], 0
        if self.more_body and self.timeout:
            self._deadline = self._watchdog.call_later(self.timeout, self._stalled)

    def _take_pending(self) -> bytes:
        pending = self._pending
        if not pending:
            return b""
        self._pending, self._pending_size = [], 0
        return pending[0] if len(pending) == 1 else b"".join(pending)

    def _stalled(self) -> None:
        self._deadline = None
        if self.more_body and self.failure is None and not self.closed:
            self._fail("stalled")

    def _fail(self, why: str) -> None:
        self.failure = why
        self.drop()
        self._read_flow.hold(REFUSED)
        self.event.set()

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None
