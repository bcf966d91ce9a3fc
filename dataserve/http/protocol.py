"""The HTTP/1.1 connection: httptools' parser fed from the socket, ASGI cycles out.

uvicorn serves the app (its server, workers, lifespan and signals), and this
protocol class is what it runs for each connection (``uvicorn.Config(http=
DataServeHttpProtocol)``). It does what uvicorn's httptools protocol does,
and what a data server needs beyond it. The connection itself owns where
the socket's bytes go, and its life: keep-alive, shutdown and closing.
The rest is in the modules it joins:

* **One buffer per body.** It is an ``asyncio.BufferedProtocol``: when the
  app takes the body whole (``dataserve.http.body``), the socket reads go
  straight into the body's own buffer, never through a read buffer, a list of
  pieces or a join (``RequestParser.body_buffer``).
* **Limits on the request head**, per request, and ``Upgrade`` ignored, while
  parsing (``dataserve.http.parsing``); the checks on a complete head are in
  ``dataserve.http.head``.
* **Bounded pipelining** (``dataserve.http.pipeline``): at ``max_pipelined``
  queued requests reading stops, whatever the app does
  (``dataserve.http.flow``), and while any is queued reads are small.
* **Peers that stop reading are cut** after ``send_timeout`` without
  progress, and the reply they held is released (``WriteFlow``).
* **TLS** is run here, with a handshake deadline (``dataserve.http.tls``).

Every refusal is answered with ``connection: close``; nothing reaches the app.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from ..core.buffer_cache import BufferCache
from ..core.deadlines import Deadline, Watchdog, Watchdogs, resolution_for
from ..core.security import TLSConfig
from .cycle import Cycle
from .flow import BODY, ReadFlow, WriteFlow
from .head import Head, refusal
from .parsing import RequestParser
from .pipeline import Pipeline
from .scope import Scopes
from .tls import TLSLayer, TLSTransport
from .transport import CoalescingTransport

__all__ = ["DataServeHttpProtocol"]

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


class DataServeHttpProtocol(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection: where its bytes go, its requests, its keep-alive and close."""

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
        #: Where large bodies' buffers come from (``None``: new every time).
        self.buffer_cache: BufferCache | None = getattr(config, "dataserve_buffer_cache", None)
        self.tls: TLSConfig | None = getattr(config, "dataserve_tls", None)
        self.handshake_timeout: float = getattr(config, "dataserve_handshake_timeout", 10.0)
        self.keepalive_timeout: float = config.timeout_keep_alive
        # Header, keep-alive and send deadlines of every connection of the
        # loop, swept by one timer (a loop timer per request would cost about
        # as much as the rest of these checks together).
        self.watchdog = _watchdog_for(
            self.loop, self.header_timeout, self.send_timeout, self.keepalive_timeout
        )
        self.scopes = Scopes(
            app_state=app_state,
            root_path=self.root_path,
            asgi={"version": config.asgi_version, "spec_version": "2.3"},
        )
        self.requests = RequestParser(
            self,
            self.scopes,
            self.watchdog,
            max_header_size=self.max_header_size,
            header_timeout=self.header_timeout,
        )
        # Reads land here unless they are a body's (one per thread: its bytes
        # are parsed at once, so the connections of a loop share it).
        self._scratch = _read_buffer()
        self.transport: Any = None
        self.read_flow: ReadFlow = None  # type: ignore[assignment]
        self.write_flow: WriteFlow = None  # type: ignore[assignment]
        #: The request being answered, and those read ahead of it.
        self.pipeline: Pipeline = None  # type: ignore[assignment]
        self._bypass = False  # the last buffer handed out was a body's
        self._keepalive: Deadline | None = None
        self._lingering = False
        self._shutting_down = False
        self._tls: TLSLayer | None = None

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
        self.scopes.connected(
            get_local_addr(transport),
            get_remote_addr(transport),
            "https" if is_ssl(transport) else "http",
        )
        self.requests.connected()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self._tls is not None:
            self._tls.stop()
        self.requests.close()
        self._stop_keepalive()
        if self.pipeline is not None:
            self.pipeline.lost()
        if self.write_flow is not None:
            self.write_flow.lost()
        if exc is None and self.transport is not None:
            self.transport.close()

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
        body = self.requests.body_buffer()
        self._bypass = body is not None
        if body is not None:
            return body
        view = self._scratch
        return view[:QUEUED_READ_SIZE] if self.pipeline.queued else view

    def plaintext_received(self, nbytes: int) -> None:
        """``nbytes`` came into the last ``plaintext_buffer()``."""
        if self._bypass:
            self.requests.body_read(nbytes)
        else:
            self.requests.feed(self._scratch[:nbytes])

    # --- requests ----------------------------------------------------------------

    @property
    def answering(self) -> bool:
        """An answer is still being produced on this connection."""
        return self.pipeline.answering

    def on_request(self, scope: dict[str, Any], head: Head) -> Cycle:
        """A request's head is complete: its cycle, answered now or queued."""
        cycle = Cycle(self, scope, head, keep_alive=head.keep_alive and not self._shutting_down)
        self.pipeline.add(cycle)
        return cycle

    def on_request_read(self, cycle: Cycle) -> None:
        """All of a request's body is in."""
        if cycle is self.pipeline.current and cycle.response_complete and not self.pipeline.queued:
            # Answered before its body was all in (and the rest dropped): idle now.
            self._arm_keepalive()

    def on_response_complete(self, cycle: Cycle) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if not self.pipeline.advance() and not self.requests.receiving:
            self._arm_keepalive()
        # A body the app did not read is read now, and dropped.
        self.read_flow.release(BODY)

    # --- keep-alive and shutdown -------------------------------------------------------

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
        elif cycle is not None and self.requests.between_requests and not self.pipeline.queued:
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

    # --- closing -------------------------------------------------------------------------

    def refuse(self, status: int, message: str, content_type: bytes = b"text/plain") -> None:
        """Answer ``status`` with ``message`` and close: the request never reaches the app."""
        self.requests.stop_deadline()
        cycle = self.pipeline.current
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # an answer is half written: no room for another
            return
        self.transport.write(refusal(status, message, content_type))
        self.close_lingering()

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
        self.requests.stop_deadline()
        self._stop_keepalive()
        transport.write_eof()
        self.read_flow.release_all()
        self.watchdog.call_later(LINGER_SECONDS, transport.close)
