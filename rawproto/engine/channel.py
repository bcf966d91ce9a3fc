"""The byte side of a connection: its state, coalesced writes and how it closes.

``Channel`` is the lowest of the three layers ``Connection`` is made of
(``Channel`` -> ``Pump`` -> ``Connection``): it holds the state all three
share, queues writes and hands them to the transport in one call, waits for
a slow reader (``drain``), and closes: plainly, lingering after an error, or
at once (``abort``). It knows nothing of events or requests; the pump above
it does, and owns the one timer, which a lingering close also uses.

Writes are queued as the objects given (``bytes``, ``memoryview``...), never
joined or copied here: a large answer's payload reaches the transport as it
is, in one ``writelines`` with its header. ``_out_bytes`` counts what is
queued, so the pump can stop taking requests once the answers it made in
one batch reach the output cap, before the transport has even seen them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dataserve.core.buffer_cache import BufferCache
from dataserve.core.errors import RemoteProtocolError
from dataserve.core.limits import Limits

from ..proto.base import ProtocolConnection
from .deadlines import LINGER_SECONDS, ConnectionTimer
from .flow_control import FlowControl
from .session import PayloadSink, Session

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["Channel", "close_transport"]

logger = logging.getLogger("rawproto.engine")


def close_transport(transport: asyncio.Transport, *, linger: bool) -> bool:
    """Close ``transport``; with ``linger`` (the peer may still be sending: it broke
    the protocol, or a frame is cut short), begin a lingering close instead.

    Lingering: FIN our side, and the caller discards what the peer still
    sends and closes on its EOF or after ``LINGER_SECONDS``, so the answer
    just sent is not destroyed by the reset that closing with unread data
    causes. True if lingering began (a transport that cannot half-close,
    TLS, is closed at once).
    """
    if not linger or not transport.can_write_eof():
        transport.close()
        return False
    with contextlib.suppress(OSError, RuntimeError):
        transport.write_eof()
    return True


class Channel(asyncio.BufferedProtocol):
    """The state of one connection, its writes and its closing (see the module)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self.limits: Limits = registry.limits
        self.buffer_cache: BufferCache | None = registry.buffer_cache
        self.loop = asyncio.get_running_loop()
        self.session: Session | None = None
        self.proto: ProtocolConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.peername: Any = None
        self._flow = FlowControl()
        #: Whether handlers may start now (``dataserve.core.exchange.Gate``).
        self.gate = self._flow.gate
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        self._in_pump = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._blocked = False  # an in-order session has a request in flight
        self._eof = False
        self._closing = False  # close() called: flushing, then closing
        self._lingering = False
        self._failed = False  # a fatal protocol error: close lingering
        self._closed = False
        self._opened_at = 0.0
        self._last_active = 0.0
        self._frame_started: float | None = None
        self._timer = ConnectionTimer(self.loop, self._on_timer)
        # Set once the session is known: its protocol's next_event() when the
        # session keeps the default poll(); whether it may hold reading.
        self._next_event: Callable[[], object] | None = None
        self._holds = False
        #: Where a large payload being received goes (``Session.payload_sink``),
        #: for a protocol that announces its payloads (``payload_size``).
        self._sink: PayloadSink | None = None
        self._payloads = False

    @abstractmethod
    def _on_timer(self) -> None:
        """The connection's one timer fired (see ``Pump``)."""

    # --- writes -----------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes; they go out together at the end of this loop iteration."""
        if self._closed or self._closing or not data:
            return
        self._out.append(data)  # type: ignore[arg-type]
        self._out_bytes += len(data)
        if not self._flush_scheduled and not self._in_pump:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def flush(self) -> bool:
        """Hand queued bytes to the transport now; True if it holds none (all are
        with the kernel: what ``drain(empty=True)`` waits for)."""
        self._flush()
        transport = self.transport
        return transport is not None and not self._closed and not transport.get_write_buffer_size()

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out or self.transport is None:
            return
        self._out = []
        self._out_bytes = 0
        try:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writelines(out)
        except RuntimeError:  # the transport closed under us
            pass

    async def drain(self, *, empty: bool = False) -> None:
        """Flush queued bytes and wait until the write buffer is below its low mark.

        ``empty=True`` waits until every byte has been handed to the kernel
        (a blocking ``send`` returns then too): what a thread-style API needs
        before it reports a message as sent.
        """
        self._flush()
        if self._closed or self._closing:
            raise ConnectionResetError("connection closed")
        transport, flow = self.transport, self._flow
        assert transport is not None
        if empty and transport.get_write_buffer_size():
            # A low mark of 0 makes the transport report an empty buffer.
            flow.empty_marks()
            try:
                if flow.write_paused:
                    await flow.waiter(self.loop)
            finally:
                if not self._closed:
                    flow.normal_marks()
            return
        if flow.write_paused:
            await flow.waiter(self.loop)

    # --- closing ----------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._closed or self._closing

    def close(self) -> None:
        """Send what is queued, then close (lingering after an error: see below)."""
        if self._closing or self._closed:
            return
        self._closing = True
        self._flush()
        transport = self.transport
        if transport is None:
            return
        self._flow.fail_waiters("connection closing")
        proto = self.proto
        peer_may_send = self._failed or (proto is not None and proto.mid_frame)
        if close_transport(transport, linger=peer_may_send and not self._eof):
            self._lingering = True
            self._flow.resume_reading()
            self._timer.set(self.loop.time() + LINGER_SECONDS)

    def abort(self) -> None:
        """Close at once, dropping anything not yet written."""
        self._closing = True
        self._out.clear()
        self._out_bytes = 0
        if self.transport is not None:
            self.transport.abort()

    def fail(self, exc: RemoteProtocolError) -> None:
        """Hand a protocol error to the session (as the engine does itself)."""
        if getattr(exc, "fatal", True):
            self._failed = True
        self._deliver_failure(exc)

    def _deliver_failure(self, exc: RemoteProtocolError) -> None:
        session = self.session
        if session is None:
            self.abort()
            return
        try:
            session.failed(exc)
        except Exception:
            logger.exception("session.failed() raised for %s", self.peername)
            self.abort()
        self._flush()
