"""uvicorn's httptools protocol with the two limits it lacks.

uvicorn bounds request headers only in its h11 implementation; with
httptools a client can send headers without end. Its keep-alive timer also
restarts on every byte, so a client trickling header bytes holds a
connection forever (slowloris). This subclass adds, per request:

* a size cap on the request line and headers (``max_header_size``): 431;
* an absolute deadline for them (``header_timeout``), counted from the
  request's first byte (or from connect), not reset per byte: 408;
* the framing checks llhttp leaves to the server: an HTTP/1.1 request needs
  exactly one valid ``Host`` (RFC 9112 3.2), and ``Transfer-Encoding`` on
  an HTTP/1.0 request is faulty framing (RFC 9112 6.1): 400.

All are answered with ``connection: close``; nothing reaches the app.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ._transport import CoalescingTransport

__all__ = ["DataServeHttpProtocol"]

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
}


class _Refused(Exception):
    """Raised from a parser callback: httptools then fails the feed."""


class _HeaderWatch:
    """The connections of one loop waiting for a request's headers, swept by one timer.

    A loop timer armed and cancelled per request costs about as much as the
    rest of the protocol's checks together. Here each connection waiting for
    headers is an entry in an insertion-ordered dict; all of a watch's
    deadlines are the same length, so that order is deadline order, and a
    timer ticking every ``resolution`` seconds (only while some connection
    waits) expires the entries at the front. A deadline fires at most
    ``resolution`` late.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.resolution = min(0.25, timeout / 4)
        self.waiting: dict[DataServeHttpProtocol, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, protocol: DataServeHttpProtocol) -> None:
        self.waiting[protocol] = self.loop.time() + self.timeout
        if self._timer is None:
            self._timer = self.loop.call_later(self.resolution, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        expired = []
        for protocol, deadline in self.waiting.items():
            if deadline > now:
                break
            expired.append(protocol)
        for protocol in expired:
            del self.waiting[protocol]
            protocol._on_deadline()  # may wait again: it goes to the back
        self._timer = self.loop.call_later(self.resolution, self._tick) if self.waiting else None


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _HeaderWatch]] = (
    weakref.WeakKeyDictionary()
)


def _watch_for(loop: asyncio.AbstractEventLoop, timeout: float) -> _HeaderWatch:
    by_timeout = _watches.get(loop)
    if by_timeout is None:
        by_timeout = _watches[loop] = {}
    watch = by_timeout.get(timeout)
    if watch is None:
        watch = by_timeout[timeout] = _HeaderWatch(loop, timeout)
    return watch


class DataServeHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_header_size: int = config.h11_max_incomplete_event_size or 16 * 1024
        self._header_timeout: float = getattr(config, "dataserve_header_timeout", 10.0)
        self._watch = _watch_for(self.loop, self._header_timeout)
        self._in_headers = True
        self._header_bytes = 0  # raw bytes received while headers are incomplete
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # A response's headers and body leave in one send (see _transport).
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._watch.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._watch.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._in_headers
            and self._header_bytes > self._max_header_size
            and not self.transport.is_closing()
        ):
            self._refuse_oversize()

    def _fail(self, status: int, message: str) -> None:
        # Raising from a parser callback makes httptools fail the feed;
        # uvicorn then calls send_400_response, which sends this instead.
        self._refusal = (status, message)
        raise _Refused

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    def _refuse_oversize(self) -> None:
        self._refuse(431, f"request headers are over the limit of {self._max_header_size} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        if self not in self._watch.waiting:
            self._watch.add(self)  # the request's first byte: its deadline starts

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._watch.waiting.pop(self, None)
        # The size of the request line and headers, as parsed. Headers that
        # arrive over several reads are capped in data_received as they come;
        # here are those that came whole in one read, before the app sees them.
        size = len(self.url)
        hosts = 0
        chunked = False
        for name, value in self.headers:
            size += len(name) + len(value) + 4  # ": " and CRLF
            if name == b"host":
                # userinfo or a path in Host is as invalid as a second Host
                hosts += 2 if (b"@" in value or b"/" in value) else 1
            elif name == b"transfer-encoding":
                chunked = True
        if size > self._max_header_size:
            self._fail(431, f"request headers are over the limit of {self._max_header_size} bytes")
        if self.parser.get_http_version() == "1.1":
            if hosts != 1:
                self._fail(400, "an HTTP/1.1 request needs exactly one valid Host header")
        elif chunked:
            self._fail(400, "Transfer-Encoding is not allowed in HTTP/1.0")
        super().on_headers_complete()

    def _on_deadline(self) -> None:
        if not self._in_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is still being produced for an earlier request on
            # this connection; judge the pipelined one once that is done.
            self._watch.add(self)
            return
        if self._header_bytes == 0 and self.cycle is None:
            self.transport.close()  # connected, never sent a byte
            return
        self._refuse(408, f"request headers not received within {self._header_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()
        self._watch.waiting.pop(self, None)
