"""What every sans-IO protocol in ``rawproto.proto`` shares.

A protocol connection is an object fed with bytes that yields events, in the
manner of h11 and wsproto; it never touches a socket, a thread or a clock::

    conn.receive_data(data)        # bytes from the peer; None means EOF
    event = conn.next_event()      # an Event, or NEED_DATA
    data = conn.send(event)        # the bytes for an event of ours

``ProtocolConnection`` spells out the full interface the I/O engine
(``rawproto.engine``) drives. Replies a protocol requires (an acknowledgement
byte, an error frame) are never sent behind the caller's back: the caller
sends them, and a peer's violation raises ``FrameError``, a
``RemoteProtocolError`` that carries the hint for the answer (``status``, the
HTTP-like code; ``request_id`` where the protocol has one; ``fatal`` when the
stream cannot be resynchronised) and which ``error_reply`` turns into this
protocol's bytes.

``ReceiveBuffer`` is the one buffer a parser reads from: appends are
amortised O(1), consumption moves an offset, and the consumed front is
dropped only occasionally, so parsing many frames out of one large read is
linear, never quadratic.
"""

from __future__ import annotations

import enum
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, final, runtime_checkable

from dataserve.core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "NEED_DATA",
    "ConnectionClosed",
    "Event",
    "FrameError",
    "FramedReceiver",
    "NeedData",
    "ProtocolConnection",
    "ReceiveBuffer",
    "Role",
]


@final
class NeedData:
    """The type of ``NEED_DATA``: no complete event is buffered yet."""

    _instance: NeedData | None = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"

    def __reduce__(self) -> str:
        return "NEED_DATA"


#: Returned by ``next_event()`` when more bytes are needed for the next event.
NEED_DATA = NeedData()


class Role(enum.Enum):
    """Which end of the connection a protocol object speaks for."""

    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every protocol event (frozen, slotted dataclasses)."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed its side at a frame boundary: nothing was cut short."""


class FrameError(RemoteProtocolError):
    """The peer broke the wire protocol.

    ``status`` is the HTTP-like code of the answer (413 frame too large, 400
    malformed, 408 too slow, 503 over the connection limit); ``request_id``
    names the request it concerns when the protocol can tell (0 otherwise);
    ``fatal`` says the byte stream cannot be resynchronised, so the
    connection must close once the answer is sent. After a non-fatal error
    the protocol object is ready for the next frame.
    """

    def __init__(
        self, message: str, status: int = 400, *, fatal: bool = True, request_id: int = 0
    ) -> None:
        super().__init__(message, status)
        self.fatal = fatal
        self.request_id = request_id


@runtime_checkable
class ProtocolConnection(Protocol):
    """The interface ``rawproto.engine`` drives (structural: no base class needed).

    ``handshake_complete`` is true once the peer's opening bytes (if the
    protocol has any) have arrived; the engine applies the handshake timeout
    until then. ``mid_frame`` is true while a frame has started but is not
    complete, or while we wait for the peer's answer to something we sent
    (tinyproto's acknowledgement byte); the engine applies the frame
    deadline then, and the idle timeout otherwise.
    """

    @property
    def handshake_complete(self) -> bool: ...

    @property
    def mid_frame(self) -> bool: ...

    def initiate(self) -> bytes:
        """The bytes to send as soon as the connection opens (b"" if none)."""
        ...

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Buffer bytes from the peer; ``None`` means the peer closed (EOF)."""
        ...

    def next_event(self) -> Event | NeedData:
        """The next complete event, or ``NEED_DATA``; raises ``FrameError``."""
        ...

    def send(self, event: Event) -> bytes:
        """The bytes for ``event``; raises ``LocalProtocolError`` if not allowed now."""
        ...

    def error_reply(self, error: ProtocolError) -> bytes:
        """This protocol's answer to ``error`` (refusal byte, error frame), or b""."""
        ...


class ReceiveBuffer:
    """Bytes received and not yet parsed, read from the front by offset.

    ``take`` copies exactly the bytes of one field or payload out once;
    nothing else is copied. The consumed front is released when the buffer
    empties (the common case between frames) or when it outgrows what is
    left, so a stream of small frames in one large read costs O(n).

    A ``bytes`` chunk appended to an empty buffer is kept as it is, not
    copied; taking all of it returns that very object, so a payload read in
    one piece (``recv(n, MSG_WAITALL)``) reaches the caller without a copy.
    """

    __slots__ = ("_data", "_start")

    # Below this many consumed bytes the front is kept: moving it costs more
    # than it saves.
    _COMPACT_AT = 64 * 1024

    def __init__(self) -> None:
        self._data: bytes | bytearray = b""
        self._start = 0

    def __len__(self) -> int:
        return len(self._data) - self._start

    def __bool__(self) -> bool:
        return len(self._data) > self._start

    def append(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        current = self._data
        if self._start >= len(current):  # empty: keep the chunk itself
            self._data = data if type(data) is bytes else bytes(data)
            self._start = 0
        elif type(current) is bytes:
            # A second chunk: from now on a bytearray (the rest of the first, then this).
            with memoryview(current) as view:
                grown = bytearray(view[self._start :])
            grown += data
            self._data = grown
            self._start = 0
        else:
            current += data

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the front, not consumed."""
        return bytes(self._data[self._start : self._start + n])

    def byte(self, index: int = 0) -> int:
        """The byte at ``index`` from the front (it must be buffered)."""
        return self._data[self._start + index]

    def unpack_from(self, fmt: struct.Struct) -> tuple[Any, ...]:
        """``fmt.unpack_from`` at the front, consuming ``fmt.size`` bytes."""
        values = fmt.unpack_from(self._data, self._start)
        self._consume(fmt.size)
        return values

    def take(self, n: int) -> bytes:
        """Consume ``n`` buffered bytes and return them as ``bytes`` (one copy at most)."""
        data, start = self._data, self._start
        if type(data) is bytes:
            out = data if start == 0 and n == len(data) else data[start : start + n]
        elif n <= 4096:
            out = bytes(data[start : start + n])  # small: cheaper than a memoryview
        else:
            with memoryview(data) as view:
                out = bytes(view[start : start + n])
        self._consume(n)
        return out

    def take_bytearray(self, n: int) -> bytearray:
        """Consume ``n`` buffered bytes and return them as a ``bytearray`` (one copy)."""
        start = self._start
        with memoryview(self._data) as view:
            out = bytearray(view[start : start + n])
        self._consume(n)
        return out

    def copy_into(self, into: memoryview, n: int) -> int:
        """Copy the first ``n`` buffered bytes (not consumed) to the front of ``into``."""
        n = min(n, len(self), len(into))
        if n:
            start = self._start
            with memoryview(self._data) as view:
                into[:n] = view[start : start + n]
        return n

    def skip(self, n: int) -> int:
        """Discard up to ``n`` bytes; return how many were discarded."""
        n = min(n, len(self))
        self._consume(n)
        return n

    def _consume(self, n: int) -> None:
        self._start += n
        data = self._data
        size = len(data)
        if self._start >= size:
            self._data = b""
            self._start = 0
        elif self._start >= self._COMPACT_AT and self._start * 2 >= size:
            if type(data) is bytes:
                self._data = data[self._start :]
            else:
                del data[: self._start]  # type: ignore[union-attr]
            self._start = 0


class FramedReceiver(ABC):
    """The receiving half every framing shares: buffer what arrives, parse
    events from it, remember a fatal error, report the peer's close once.

    A subclass parses in ``_next()`` (an event, or ``NEED_DATA``) and says in
    ``_at_eof()`` whether the stream may end where it is: it raises
    ``self._fatal(...)`` if the peer closed mid-frame, or returns
    ``self._closed()``.
    """

    def __init__(self) -> None:
        self._buf = ReceiveBuffer()
        self._eof = False
        self._eof_reported = False
        self._broken: FrameError | None = None

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Feed bytes from the peer; ``None`` (or no call after EOF) means it closed."""
        if data is None:
            self._eof = True
        elif data:
            if self._eof:
                raise LocalProtocolError("data received after EOF")
            self._buf.append(data)

    def next_event(self) -> Event | NeedData:
        if self._broken is not None:
            raise self._broken
        try:
            event = self._next()
        except FrameError as exc:
            if exc.fatal:
                self._broken = exc
            raise
        if event is NEED_DATA and self._eof:
            return self._at_eof()
        return event

    def events(self) -> list[Event]:
        """Every event that can be parsed now (convenience for tests and clients)."""
        out: list[Event] = []
        while True:
            event = self.next_event()
            if isinstance(event, NeedData):
                return out
            out.append(event)
            if isinstance(event, ConnectionClosed):
                return out

    @abstractmethod
    def _next(self) -> Event | NeedData:
        """The next event parsed from the buffer, or ``NEED_DATA``."""

    @abstractmethod
    def _at_eof(self) -> Event | NeedData:
        """The peer closed and nothing more parses: ``self._closed()``, or raise."""

    def _closed(self) -> Event | NeedData:
        """The peer closed cleanly: ``ConnectionClosed`` once, then ``NEED_DATA``."""
        if self._eof_reported:
            return NEED_DATA
        self._eof_reported = True
        return ConnectionClosed()

    def _fatal(self, message: str, status: int = 400) -> FrameError:
        """A fatal error, remembered: every later ``next_event`` raises it too."""
        exc = FrameError(message, status)
        self._broken = exc
        return exc
