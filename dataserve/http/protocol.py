"""The HTTP/1.1 connection: httptools' parser fed from the socket, ASGI cycles out.

uvicorn serves the app (its server, workers, lifespan and signals), and this
protocol class is what it runs for each connection (``uvicorn.Config(http=
DataServeHttpProtocol)``). It does what uvicorn's httptools protocol does,
and what a data server needs beyond it:

* **One buffer per body.** It is an ``asyncio.BufferedProtocol``: when the
  app takes the body whole (``dataserve.http.cycle``), the socket reads go
  straight into the body's own buffer, never through a read buffer, a list of
  pieces or a join. The parser is bypassed for those bytes and replaced by a
  fresh one once the body is in.
* **Limits on the request head**, per request: a size cap on the request
  line and headers, trailers included (``max_header_size``): 431; headers
  still arriving are counted in raw bytes read (when one read holds the end
  of a request and the start of the next, only what was parsed of the new
  one counts for that read, so the cut comes at most one read late); an
  absolute deadline for them (``header_timeout``), counted from the request's
  first byte (or from connect), not reset per byte: 408. The checks on a
  complete head are in ``dataserve.http.head``.
* **Bounded pipelining.** Requests read ahead of the one being answered are
  queued (``dataserve.http.pipeline``); at ``max_pipelined`` reading stops,
  whatever the app does (``dataserve.http.flow``), and while any is queued
  reads are small.
* **Peers that stop reading are cut** after ``send_timeout`` without
  progress, and the reply they held is released.
* **TLS** is run here, with a handshake deadline (``dataserve.http.tls``).
* **Upgrade is ignored** (RFC 9110 7.8 lets a server ignore it): a request
  with ``Upgrade: h2c`` and a body is served as HTTP/1.1 with its whole body
  (llhttp stops at an upgrade; the body is parsed by a parser continuing
  where it stopped).

Every refusal is answered with ``connection: close``; nothing reaches the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import urllib.parse
from typing import Any, NoReturn

import httptools
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from ..core.deadlines import Deadline, Watchdog, Watchdogs, resolution_for
from ..core.security import TLSConfig
from .cycle import WHOLE_BODY, Cycle
from .flow import BODY, ReadFlow, WriteFlow
from .head import Head, Refusal, header_size, read_head
from .pipeline import Pipeline
from .tls import TLSLayer, TLSTransport
from .transport import CoalescingTransport

__all__ = ["DataServeHttpProtocol"]

logger = logging.getLogger("dataserve.http")

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    505: b"HTTP Version Not Supported",
}
#: How long a connection closed with a refusal keeps reading (and dropping)
#: what the peer still sends, so that the refusal is read before a reset.
LINGER_SECONDS = 2.0
#: At shutdown, how long a connection whose request is arriving still gets to
#: send it (it is then answered and closed).
SHUTDOWN_GRACE = 2.0
#: What one socket read may bring in (uvloop's own read size).
READ_SIZE = 256 * 1024
#: The read size while requests are queued: a peer pipelining tiny requests
#: adds at most this much to the queue beyond ``max_pipelined``.
QUEUED_READ_SIZE = 4 * 1024

# Per thread (one event loop each): the buffer reads land in when they are
# not a body's. Its bytes are parsed at once, so connections can share it.
_scratch = threading.local()


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_scratch, "view", None)
    if view is None:
        view = _scratch.view = memoryview(bytearray(READ_SIZE))
    return view


# Deadlines by timeout settings (servers sharing a loop may differ).
_watchdogs: dict[float, Watchdogs] = {}


def _watchdog_for(loop: asyncio.AbstractEventLoop, *timeouts: float) -> Watchdog:
    resolution = resolution_for(*timeouts)
    watchdogs = _watchdogs.get(resolution)
    if watchdogs is None:
        watchdogs = _watchdogs.setdefault(resolution, Watchdogs(resolution))
    return watchdogs.get(loop)


class _Refused(Exception):
    """Raised from a parser callback: httptools then fails the feed."""


class DataServeHttpProtocol(asyncio.BufferedProtocol):
    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop: asyncio.AbstractEventLoop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.app_state = app_state
        self.root_path: str = config.root_path
        self.limit_concurrency: int | None = config.limit_concurrency
        self.max_header_size: int = config.h11_max_incomplete_event_size or 16 * 1024
        self.header_timeout: float = getattr(config, "dataserve_header_timeout", 10.0)
        self.send_timeout: float = getattr(config, "dataserve_send_timeout", 30.0)
        self.max_pipelined: int = getattr(config, "dataserve_max_pipelined", 256)
        self.tls: TLSConfig | None = getattr(config, "dataserve_tls", None)
        self.handshake_timeout: float = getattr(config, "dataserve_handshake_timeout", 10.0)
        self.keepalive_timeout: float = config.timeout_keep_alive
        # Header, keep-alive and send deadlines of every connection of the
        # loop, swept by one timer (a loop timer per request would cost about
        # as much as the rest of these checks together).
        self.watchdog = _watchdog_for(
            self.loop, self.header_timeout, self.send_timeout, self.keepalive_timeout
        )
        self.parser = self._new_parser()
        # The same for every request of the connection (uvicorn's Config
        # computes asgi_version on each access).
        self._asgi = {"version": config.asgi_version, "spec_version": "2.3"}
        # Reads land here unless they are a body's (one per thread: its bytes
        # are parsed at once, so the connections of a loop share it).
        self._scratch = _read_buffer()
        self.transport: Any = None
        self.read_flow: ReadFlow = None  # type: ignore[assignment]
        self.write_flow: WriteFlow = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        #: The request being answered, and those read ahead of it.
        self.pipeline: Pipeline = None  # type: ignore[assignment]
        # The request being parsed.
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.scope: dict[str, Any] = {}
        self._reading: Cycle | None = None  # the cycle whose body is being received
        self._head: Head | None = None  # its head, once complete (trailers follow it)
        self._trailers = 0
        self._continuing: Cycle | None = None  # a body parsed after an ignored upgrade
        self._bypass = False  # the last buffer handed out was a body's
        # Header limits.
        self._deadline: Deadline | None = None
        self._in_headers = True
        self._header_bytes = 0  # raw bytes received while headers are incomplete
        self._between = True  # no request in progress (before one begins, after one ends)
        self._begun = 0  # requests begun during the current read
        self._refusal: tuple[int, str] | None = None
        self._keepalive: Deadline | None = None
        self._lingering = False
        self._shutting_down = False
        self._tls: TLSLayer | None = None

    def _new_parser(self) -> httptools.HttpRequestParser:
        parser = httptools.HttpRequestParser(self)
        # Answer the first of pipelined requests even if a later one is bad.
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3 has no leniencies
            parser.set_dangerous_leniencies(lenient_data_after_close=True)
        return parser

    # --- asyncio.BufferedProtocol ---------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        if self.tls is not None:
            # TLS is run here (see .tls); the connection counts (for the limit
            # and for shutdown) while it shakes hands, within a deadline.
            self.connections.add(self)
            self._tls = TLSLayer(self, transport, self.tls, self.watchdog, self.handshake_timeout)
            return
        self._made(transport)

    def tls_established(self, transport: TLSTransport) -> None:
        self._made(transport)

    def _made(self, transport: Any) -> None:
        self.connections.add(self)
        # A response's headers and body leave in one send (see .transport).
        self.transport = CoalescingTransport(transport, self.loop)
        self.read_flow = ReadFlow(self.transport)
        self.write_flow = WriteFlow(self.transport, self.watchdog, self.send_timeout, self._stalled)
        self.pipeline = Pipeline(
            self.loop,
            self.app,
            self.server_state,
            self.read_flow,
            limit_concurrency=self.limit_concurrency,
            max_pipelined=self.max_pipelined,
        )
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "https" if is_ssl(transport) else "http"
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self._tls is not None:
            self._tls.stop()
        self._stop_deadline()
        self._stop_keepalive()
        if self.pipeline is not None:
            self.pipeline.lost()
        if self.write_flow is not None:
            self.write_flow.lost()
        if exc is None and self.transport is not None:
            self.transport.close()
        self.parser = None  # type: ignore[assignment]

    def eof_received(self) -> bool | None:
        if self._lingering:
            self.transport.close()  # the peer has read our answer and closed
        return None

    def pause_writing(self) -> None:
        if self.write_flow is not None:  # None: still shaking hands
            self.write_flow.pause()

    def resume_writing(self) -> None:
        if self.write_flow is not None:
            self.write_flow.resume()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._tls is not None:
            return self._scratch  # ciphertext: decrypted from there
        return self.plaintext_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self._stop_keepalive()
        if self._lingering:
            return  # closing: what the peer still sends is dropped
        if self._tls is not None:
            self._tls.received(self._scratch[:nbytes])
        else:
            self.plaintext_received(nbytes)

    def plaintext_buffer(self) -> memoryview:
        """Where the next bytes go: the body's own buffer, or the read buffer."""
        reading = self._reading
        self._bypass = False
        if reading is not None and self._continuing is None and not self._in_headers:
            body = reading.body.reading_into()
            if body is not None:
                self._bypass = True
                return body.remaining()
        view = self._scratch
        return view[:QUEUED_READ_SIZE] if self.pipeline.queued else view

    def plaintext_received(self, nbytes: int) -> None:
        """``nbytes`` came into the last ``plaintext_buffer()``."""
        if self._bypass:
            self._body_read(nbytes)
        else:
            self._received(self._scratch[:nbytes])

    def _body_read(self, nbytes: int) -> None:
        cycle = self._reading
        assert cycle is not None
        cycle.body.read_into(nbytes)
        body = cycle.body.reading_into()
        if body is None:
            # The body is complete: the parser, left in the middle of it, is
            # replaced by one that starts at the next request.
            self.parser = self._new_parser()
            self._message_complete(cycle)

    def _received(self, data: memoryview) -> None:
        fresh = self._between
        self._begun = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade_ignored(data[exc.args[0] :])
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:
                self._send_400("Invalid HTTP request received.")
            return
        if self._in_headers and not self.transport.is_closing():
            if not self._begun:
                self._header_bytes += len(data)  # the same headers, continued
            elif fresh and self._begun == 1:
                self._header_bytes = len(data)  # all of this read is this request's
            else:
                # An earlier request ended in this read: what of it belongs
                # to the new one is not known, but at least what was parsed.
                self._header_bytes = header_size(self.url, self.headers)
            if self._header_bytes > self.max_header_size:
                self._refuse(431, self._oversize("headers"))
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
            self._received(rest)

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
        self.scope = {
            "type": "http",
            "asgi": self._asgi,
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }

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
        self._stop_deadline()
        version = self.parser.get_http_version()
        try:
            head = read_head(version, self.url, self.headers, self.max_header_size)
        except Refusal as refusal:
            self._fail(refusal.status, refusal.message)
        self._head = head
        scope = self.scope
        scope["method"] = self.parser.get_method().decode("ascii")
        if version != "1.1":
            scope["http_version"] = version
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed.query or b""
        cycle = Cycle(
            self,
            scope,
            keep_alive=head.keep_alive and not self._shutting_down,
            expect_100=head.expect_100,
            length=head.length,
            has_body=head.has_body,
        )
        # Per request: the one ASGI extension's entry point is this cycle's.
        scope["extensions"] = {WHOLE_BODY: {"read": cycle.read_whole}}
        self._reading = cycle
        self.pipeline.add(cycle)

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
        pipeline = self.pipeline
        if cycle is pipeline.current and cycle.response_complete and not pipeline.queued:
            # Answered before its body was all in (and the rest dropped): idle now.
            self._arm_keepalive()

    # --- requests ----------------------------------------------------------------

    def on_response_complete(self, cycle: Cycle) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if not self.pipeline.advance() and self._reading is None:
            self._arm_keepalive()
        # A body the app did not read is read now, and dropped.
        self.read_flow.release(BODY)

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the answer in progress."""
        if self.transport is None:
            if self._tls is not None:
                self._tls.abort()  # still shaking hands: nothing in progress
            self.connections.discard(self)
            return
        self._shutting_down = True
        cycle = self.pipeline.current
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # closed after the answer in progress
        elif cycle is not None and self._between and not self.pipeline.queued:
            self.transport.close()  # idle between requests: nothing is lost
        else:
            # Just accepted, or a request's head arriving: the client is
            # sending it now, and closing would reset it. It is answered
            # (then closed) if it comes within SHUTDOWN_GRACE seconds.
            self._stop_keepalive()
            self.watchdog.call_later(min(SHUTDOWN_GRACE, self.header_timeout), self._idle)

    def _arm_keepalive(self) -> None:
        if self._keepalive is None and not self.transport.is_closing():
            self._keepalive = self.watchdog.call_later(self.keepalive_timeout, self._idle)

    def _idle(self) -> None:
        self._keepalive = None
        if not self.transport.is_closing() and not self.pipeline.answering:
            self.transport.close()

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.stop()
            self._keepalive = None

    def _stalled(self) -> None:
        # The peer read nothing for send_timeout: its reply goes with the connection.
        self.transport.abort()

    # --- refusals ----------------------------------------------------------------

    def _fail(self, status: int, message: str) -> NoReturn:
        # Raising from a parser callback makes httptools fail the feed;
        # _received then answers with this refusal.
        self._refusal = (status, message)
        raise _Refused

    def close_lingering(self) -> None:
        """Close after an answer while the peer may still be sending.

        Closing a socket with unread bytes makes the kernel send a reset,
        and a peer still sending reads the reset instead of the answer. So
        our side is shut for writing (after the answer), and what arrives is
        read and dropped until the peer closes or ``LINGER_SECONDS`` pass.
        TLS cannot half-close: it closes at once.
        """
        transport = self.transport
        if self._lingering or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        self._stop_deadline()
        self._stop_keepalive()
        transport.write_eof()
        self.read_flow.release_all()
        self.watchdog.call_later(LINGER_SECONDS, transport.close)

    def _half_answered(self) -> bool:
        cycle = self.pipeline.current
        return cycle is not None and cycle.response_started and not cycle.response_complete

    def _oversize(self, what: str) -> str:
        return f"request {what} are over the limit of {self.max_header_size} bytes"

    def _send_400(self, message: str) -> None:
        if self._half_answered():
            self.transport.close()  # an answer is half written: no room for another
            return
        body = message.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.close_lingering()

    def _refuse(self, status: int, message: str) -> None:
        self._stop_deadline()
        if self._half_answered():
            self.transport.close()  # an answer is half written: no room for another
            return
        body = message.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.close_lingering()

    # --- the header deadline ------------------------------------------------------

    def _start_deadline(self) -> None:
        self._deadline = self.watchdog.call_later(self.header_timeout, self._on_deadline)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if not self._in_headers or self.transport.is_closing():
            return
        if self.pipeline.answering:
            # A response is still being produced for an earlier request on
            # this connection; judge the pipelined one once that is done.
            self._start_deadline()
            return
        if self._between and self._header_bytes == 0:
            self.transport.close()  # connected, never sent a byte
            return
        self._refuse(408, f"request headers not received within {self.header_timeout:g} s")
