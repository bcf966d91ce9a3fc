"""Requests out of a connection's bytes: httptools' parser, its callbacks and the head limits.

``RequestParser`` is fed what the connection reads and hands each request to
the connection as soon as its head is complete, as an ASGI scope and its
checked framing (``dataserve.http.head``); the connection answers with the
request's cycle, which the body then goes to. It keeps the limits on the
request head that need the bytes as they arrive, per request:

* a size cap on the request line and headers, trailers included
  (``max_header_size``): 431; headers still arriving are counted in raw bytes
  read (when one read holds the end of a request and the start of the next,
  only what was parsed of the new one counts for that read, so the cut comes
  at most one read late);
* an absolute deadline for them (``header_timeout``), counted from the
  request's first byte (or from connect), not reset per byte: 408.

**Upgrade is ignored** (RFC 9110 7.8 lets a server ignore it): a request with
``Upgrade: h2c`` and a body is served as HTTP/1.1 with its whole body (llhttp
stops at an upgrade; the body is parsed by a parser continuing where it
stopped).

A body the app takes whole bypasses the parser: the connection reads it
straight into the body's own buffer (``body_buffer``, ``body_read``), and the
parser is replaced by a fresh one once the body is in.
"""

from __future__ import annotations

import contextlib
from typing import Any, NoReturn, Protocol

import httptools

from ..core.deadlines import Deadline, Watchdog
from .cycle import Cycle
from .head import Head, Refusal, header_size, read_head
from .scope import Scopes

__all__ = ["Connection", "RequestParser"]

#: The content type of the answer to bytes that are not HTTP at all.
_INVALID_TYPE = b"text/plain; charset=utf-8"


class Connection(Protocol):
    """What the parser needs of its connection (``dataserve.http.protocol``)."""

    transport: Any

    @property
    def answering(self) -> bool:
        """An answer to an earlier request is still being produced."""
        ...

    def on_request(self, scope: dict[str, Any], head: Head) -> Cycle: ...

    def on_request_read(self, cycle: Cycle) -> None: ...

    def refuse(self, status: int, message: str, content_type: bytes = ...) -> None: ...


class _Refused(Exception):
    """Raised from a parser callback: httptools then fails the feed."""


class RequestParser:
    """One connection's requests, parsed: bytes in, a scope and a head per request out."""

    def __init__(
        self,
        conn: Connection,
        scopes: Scopes,
        watchdog: Watchdog,
        *,
        max_header_size: int,
        header_timeout: float,
    ) -> None:
        self._conn = conn
        #: The scope of each request (``dataserve.http.scope``).
        self.scopes = scopes
        self._watchdog = watchdog
        self.max_header_size = max_header_size
        self.header_timeout = header_timeout
        self.parser = self._new_parser()
        # The request being parsed.
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.scope: dict[str, Any] = {}
        self._reading: Cycle | None = None  # the cycle whose body is being received
        self._head: Head | None = None  # its head, once complete (trailers follow it)
        self._trailers = 0
        self._continuing: Cycle | None = None  # a body parsed after an ignored upgrade
        # Header limits.
        self._deadline: Deadline | None = None
        self._in_headers = True
        self._header_bytes = 0  # raw bytes received while headers are incomplete
        self._between = True  # no request in progress (before one begins, after one ends)
        self._begun = 0  # requests begun during the current read
        self._refusal: tuple[int, str] | None = None

    def _new_parser(self) -> httptools.HttpRequestParser:
        parser = httptools.HttpRequestParser(self)
        # Answer the first of pipelined requests even if a later one is bad.
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3 has no leniencies
            parser.set_dangerous_leniencies(lenient_data_after_close=True)
        return parser

    # --- from the connection ------------------------------------------------------

    def connected(self) -> None:
        """The connection is up: the first request's header deadline starts."""
        self._start_deadline()

    def close(self) -> None:
        """The connection is gone: nothing more is parsed."""
        self.stop_deadline()
        self.parser = None  # type: ignore[assignment]

    @property
    def between_requests(self) -> bool:
        """No request is in progress (none begun yet, or the last one all read)."""
        return self._between

    @property
    def receiving(self) -> bool:
        """A request's head is complete and its body is still arriving."""
        return self._reading is not None

    def body_buffer(self) -> memoryview | None:
        """Where the next bytes go if they are a body read straight into its buffer."""
        reading = self._reading
        if reading is not None and self._continuing is None and not self._in_headers:
            body = reading.body.reading_into()
            if body is not None:
                return body.remaining()
        return None

    def body_read(self, nbytes: int) -> None:
        """``nbytes`` were read into ``body_buffer()``."""
        cycle = self._reading
        assert cycle is not None
        cycle.body.read_into(nbytes)
        if cycle.body.reading_into() is None:
            # The body is complete: the parser, left in the middle of it, is
            # replaced by one that starts at the next request.
            self.parser = self._new_parser()
            self._message_complete(cycle)

    def feed(self, data: memoryview) -> None:
        """Parse bytes read from the peer."""
        fresh = self._between
        self._begun = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade_ignored(data[exc.args[0] :])
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._conn.refuse(*self._refusal)
            else:
                self._conn.refuse(400, "Invalid HTTP request received.", _INVALID_TYPE)
            return
        if self._in_headers and not self._conn.transport.is_closing():
            if not self._begun:
                self._header_bytes += len(data)  # the same headers, continued
            elif fresh and self._begun == 1:
                self._header_bytes = len(data)  # all of this read is this request's
            else:
                # An earlier request ended in this read: what of it belongs
                # to the new one is not known, but at least what was parsed.
                self._header_bytes = header_size(self.url, self.headers)
            if self._header_bytes > self.max_header_size:
                self._conn.refuse(431, self._oversize("headers"))
            elif self._deadline is None:
                # A request began in this read and its headers are not all
                # here: its deadline starts now. (Headers that come whole in
                # one read, the usual case, never need one.)
                self._start_deadline()

    def _upgrade_ignored(self, rest: memoryview) -> None:
        """llhttp stopped at a request with ``Upgrade``: serve it as HTTP/1.1.

        Its body, if it has one, is parsed by a fresh parser told the framing
        by a head of our own; the parser then goes on to the next request.
        """
        rest = memoryview(bytes(rest))  # the read buffer is shared
        cycle, head = self._reading, self._head
        self.parser = self._new_parser()
        if cycle is not None and head is not None and head.has_body:
            framing = (
                b"transfer-encoding: chunked"
                if head.chunked
                else b"content-length: %d" % (head.length or 0)
            )
            self._continuing = cycle
            self.parser.feed_data(b"PUT / HTTP/1.1\r\nhost: body\r\n" + framing + b"\r\n\r\n")
        if rest:
            self.feed(rest)

    # --- parser callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._continuing is not None:
            return
        self._in_headers = True
        self._between = False
        self._begun += 1
        self._head = None
        self._trailers = 0
        self.url = b""
        self.headers = []
        self.scope = self.scopes.begin(self.headers)

    def on_url(self, url: bytes) -> None:
        if self._continuing is None:
            self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._continuing is not None:
            return
        if self._head is not None:
            # A trailer: counted against the same limit as the headers, and
            # dropped (the app has the headers already).
            self._trailers += len(name) + len(value) + 4
            if self._head.size + self._trailers > self.max_header_size:
                self._fail(431, self._oversize("headers and trailers"))
            return
        # llhttp keeps trailing OWS, which RFC 9110 5.5 excludes from the value.
        self.headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        if self._continuing is not None:
            self._reading = self._continuing
            self._in_headers = False
            return
        self._in_headers = False
        self.stop_deadline()
        version = self.parser.get_http_version()
        try:
            head = read_head(version, self.url, self.headers, self.max_header_size)
        except Refusal as refusal:
            self._fail(refusal.status, refusal.message)
        self._head = head
        scope = self.scope
        self.scopes.complete(scope, self.parser.get_method(), version, self.url)
        self._reading = self._conn.on_request(scope, head)

    def on_body(self, body: bytes) -> None:
        if self._reading is not None:
            self._reading.body.on_body(body)

    def on_message_complete(self) -> None:
        cycle = self._reading
        if cycle is None:
            return
        if (
            self._continuing is None
            and self._head is not None
            and self._head.upgrade
            and self._head.has_body
        ):
            return  # llhttp skipped the body of an upgrade: it comes next (_upgrade_ignored)
        self._continuing = None
        self._message_complete(cycle)

    def _message_complete(self, cycle: Cycle) -> None:
        self._between = True
        self._reading = None
        cycle.body.on_message_complete()
        self._conn.on_request_read(cycle)

    # --- refusals ----------------------------------------------------------------

    def _fail(self, status: int, message: str) -> NoReturn:
        # Raising from a parser callback makes httptools fail the feed;
        # feed() then answers with this refusal.
        self._refusal = (status, message)
        raise _Refused

    def _oversize(self, what: str) -> str:
        return f"request {what} are over the limit of {self.max_header_size} bytes"

    # --- the header deadline ------------------------------------------------------

    def _start_deadline(self) -> None:
        self._deadline = self._watchdog.call_later(self.header_timeout, self._on_deadline)

    def stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if not self._in_headers or self._conn.transport.is_closing():
            return
        if self._conn.answering:
            # A response is still being produced for an earlier request on
            # this connection; judge the pipelined one once that is done.
            self._start_deadline()
            return
        if self._between and self._header_bytes == 0:
            self._conn.transport.close()  # connected, never sent a byte
            return
        self._conn.refuse(408, f"request headers not received within {self.header_timeout:g} s")
