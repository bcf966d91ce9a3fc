"""uvicorn's httptools protocol with the two limits it lacks.

uvicorn bounds request headers only in its h11 implementation; with
httptools a client can send headers without end. Its keep-alive timer also
restarts on every byte, so a client trickling header bytes holds a
connection forever (slowloris). This subclass adds, per request:

* a size cap on the request line and headers (``max_header_size``): 431.
  Headers still arriving are counted in raw bytes read. When one read holds
  the end of a request and the start of the next, only what was parsed of
  the new one counts for that read, so the cut comes at most one read late;
* an absolute deadline for them (``header_timeout``), counted from the
  request's first byte (or from connect), not reset per byte: 408;
* the framing checks llhttp leaves to the server: an HTTP/1.1 request needs
  exactly one valid ``Host`` (RFC 9112 3.2), and ``Transfer-Encoding`` on
  an HTTP/1.0 request is faulty framing (RFC 9112 6.1): 400.

All are answered with ``connection: close``; nothing reaches the app.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..core.deadlines import Deadline, Watchdog, Watchdogs, resolution_for
from .transport import CoalescingTransport

__all__ = ["DataServeHttpProtocol"]

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
}


class _Refused(Exception):
    """Raised from a parser callback: httptools then fails the feed."""


# One per header timeout (servers sharing a loop may differ): the header
# deadlines of all connections of a loop, swept by one timer.
_watchdogs: dict[float, Watchdogs] = {}


def _watchdog_for(loop: asyncio.AbstractEventLoop, timeout: float) -> Watchdog:
    watchdogs = _watchdogs.get(timeout)
    if watchdogs is None:
        watchdogs = _watchdogs.setdefault(timeout, Watchdogs(resolution_for(timeout)))
    return watchdogs.get(loop)


class DataServeHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_header_size: int = config.h11_max_incomplete_event_size or 16 * 1024
        self._header_timeout: float = getattr(config, "dataserve_header_timeout", 10.0)
        # A loop timer armed and cancelled per request would cost about as
        # much as the rest of these checks together: one sweeps them all.
        self._watchdog = _watchdog_for(self.loop, self._header_timeout)
        self._deadline: Deadline | None = None
        self._in_headers = True
        self._header_bytes = 0  # raw bytes received while headers are incomplete
        self._between = True  # no request in progress (before one begins, after one ends)
        self._begun = 0  # requests begun during the current read
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # A response's headers and body leave in one send (see _transport).
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        fresh = self._between
        self._begun = 0
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            if not self._begun:
                self._header_bytes += len(data)  # the same headers, continued
            elif fresh and self._begun == 1:
                self._header_bytes = len(data)  # all of this read is this request's
            else:
                # An earlier request ended in this read: what of it belongs
                # to the new one is not known, but at least what was parsed.
                self._header_bytes = self._parsed_header_size()
            if self._header_bytes > self._max_header_size:
                self._refuse_oversize()
            elif self._deadline is None:
                # A request began in this read and its headers are not all
                # here: its deadline starts now. (Headers that come whole in
                # one read, the usual case, never need one.)
                self._start_deadline()

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
        self._between = False
        self._begun += 1

    def on_message_complete(self) -> None:
        self._between = True
        super().on_message_complete()

    def _parsed_header_size(self) -> int:
        # The request line's target and the headers completed so far; a
        # header still arriving is not in it.
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_deadline()
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

    def _start_deadline(self) -> None:
        self._deadline = self._watchdog.call_later(self._header_timeout, self._on_deadline)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if not self._in_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is still being produced for an earlier request on
            # this connection; judge the pipelined one once that is done.
            self._start_deadline()
            return
        if self._between and self._header_bytes == 0:
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
        self._stop_deadline()
