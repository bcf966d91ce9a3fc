"""``datastream``: the request body, read by the callback as it arrives.

The body is pulled from the ASGI ``receive()`` channel only when the callback
reads, so a large upload is never held in memory whole: uvicorn stops reading
the socket while its buffer is full (about 64 KiB), and the client is held
back by TCP until the callback asks for more.

``receive()`` belongs to the event loop. ``aread()`` runs there directly; the
blocking ``read()`` of a ``def`` callback (on a handler thread) hands the same
coroutine to the loop and waits for it, one hop per ``read()`` call rather
than per network chunk.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..core.deadlines import Deadline, Watchdogs, resolution_for
from ..core.errors import DataServeError, LimitExceeded, RemoteProtocolError

__all__ = ["DataStream"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class DataStream:
    """The request body as a read-only file-like object.

    ``read(n=-1)`` blocks and is for ``def`` callbacks; ``await aread(n=-1)``
    is for ``async def`` callbacks. Both return at most ``n`` bytes (all the
    rest for ``n < 0``), fewer only at the end of the body, and ``b''`` once
    the body is over.

    Reading raises a ``DataServeError`` whose ``status`` is the answer the
    server then sends, whatever the callback returns: ``LimitExceeded`` (413)
    when the body crosses ``max_body_size``, ``RemoteProtocolError`` with
    status 408 when nothing arrives for ``body_timeout`` seconds, and with
    status 400 when the client disconnects mid-body (no answer is sent then).
    """

    def __init__(
        self,
        receive: Receive,
        loop: asyncio.AbstractEventLoop,
        *,
        max_size: int,
        timeout: float,
        watchdogs: Watchdogs | None = None,
    ) -> None:
        self._receive = receive
        self._loop = loop
        self._max_size = max_size
        self._timeout = timeout
        # One sweeping timer per loop for every stream of a server (its endpoint's).
        self._watchdogs = watchdogs or Watchdogs(resolution_for(timeout))
        self._buffer = bytearray()
        self._received = 0
        self._more = True
        self._closed = False
        self._sync_lock = threading.Lock()
        self._async_lock = asyncio.Lock()
        #: The error that ended the body, if one did; the server answers it.
        self.error: DataServeError | None = None
        #: True when the client went away before the whole body arrived.
        self.disconnected = False

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End reading; the server calls this once the callback has returned."""
        self._closed = True

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all for ``n < 0``), blocking; for ``def`` callbacks."""
        self._check_open()
        if _running_loop() is self._loop:
            raise RuntimeError(
                "datastream.read() would block the event loop: "
                "use 'await datastream.aread()' in an async callback"
            )
        with self._sync_lock:
            if self._needs(n):
                asyncio.run_coroutine_threadsafe(self._fill(n), self._loop).result()
            return self._take(n)

    async def aread(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all for ``n < 0``); for ``async def`` callbacks."""
        self._check_open()
        async with self._async_lock:
            if self._needs(n):
                await self._fill(n)
            return self._take(n)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed datastream (the request is over)")
        if self.error is not None:
            raise self.error  # every later read fails the same way

    def _needs(self, n: int) -> bool:
        return self._more and (n < 0 or len(self._buffer) < n)

    def _take(self, n: int) -> bytes:
        if n < 0 or n >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            with memoryview(self._buffer) as view:
                data = bytes(view[:n])  # one copy, not two as bytes(buffer[:n]) makes
            del self._buffer[:n]  # cheap: bytearray drops a prefix without moving the rest
        return data

    async def _fill(self, n: int) -> None:
        """Pull messages until ``n`` bytes are buffered or the body ends (on the loop).

        The body deadline is a ``Watchdog`` deadline, moved on by each piece
        that arrives: ``body_timeout`` applies to the wait for the next one.
        """
        deadline = self._watchdogs.get(self._loop).start(self._timeout)
        try:
            await self._pull(n, deadline)
        finally:
            deadline.stop()

    async def _pull(self, n: int, deadline: Deadline) -> None:
        while self._needs(n):
            try:
                message = await self._receive()
            except asyncio.CancelledError:
                if not deadline.owns():
                    raise  # not ours: the request is cancelled
                raise self._fail(
                    RemoteProtocolError(
                        f"request body stalled: nothing received for {self._timeout:g} s", 408
                    )
                ) from None
            deadline.restart(self._timeout)
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise self._fail(
                    RemoteProtocolError("the client disconnected before sending the whole body")
                )
            chunk = message.get("body", b"")
            self._more = message.get("more_body", False)
            if chunk:
                self._received += len(chunk)
                if self._received > self._max_size:
                    raise self._fail(
                        LimitExceeded(f"request body is over the limit of {self._max_size} bytes")
                    )
                self._buffer += chunk

    def _fail(self, error: DataServeError) -> DataServeError:
        self.error = error
        self._more = False
        self._buffer.clear()
        return error


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
