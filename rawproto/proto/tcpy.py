"""tcpy's wire protocol, sans-IO: bytes in, events out, ``send(event) -> bytes``.

The wire (tcpy 0.0.x, byte for byte): every message is a 4-byte big-endian
length followed by that many bytes of one msgpack value. A request is a map
``{"cmd": NAME, **params}``; the reply is the handler's map, such as
``{"success": true, "solution": 3}`` or ``{"error": true, "message": "..."}``.
While a handler runs, both sides may exchange further maps on the same
connection (``TCPHandler.send``/``recv``); the reply ends the exchange. The
original client opens one connection per request; this server also takes any
number of requests, one after the other, on one connection.

Python 2's tcpy packs a ``str`` with msgpack's old raw type (there is no bin
type), so binary data arrives as raw bytes that are not UTF-8. Raw that
decodes as UTF-8 is a ``str``; raw that does not arrives as ``bytes``, as the
bin type does (keys included), both ways.

tcpy also carries naive ``datetime`` values as ``{"__datetime__": true,
"as_str": "%Y-%m-%dT%H:%M:%S.%f"}``; both directions convert them, as the
original does. msgpack's own timestamp extension decodes to an aware
``datetime``; any other extension type is refused.

Events (frozen, slotted dataclasses, ``rawproto.proto.base.Event``)::

    Request(command, params)   a request map (server receives, client sends)
    Message(data)              any other message: a reply (client side) or a
                               mid-exchange message (either side)
    Reply(data)                the server's answer, which ends an exchange
    ConnectionClosed()         the peer closed between messages (reported once)

A ``Connection`` never reads ahead: ``next_event`` interprets the next buffered
message by the state it is called in, so a frame that arrives while a handler
runs is a ``Message`` only if the handler asks for one; otherwise it is the
next ``Request`` once the reply is sent (``buffered`` lets the I/O shell stop
reading while a handler runs).

Limits (``dataserve.core.limits.Limits``) are checked from the announced length
before the payload is buffered (``max_frame_size`` and, every message being
msgpack, ``max_structured_size``: 413). Each message is decoded within the
core's budget for structures (``dataserve.core.budget``): ``max_container_len``
for arrays and maps and ``max_depth`` nesting, checked as the headers are read,
and an estimate of the memory the value takes, all before a value is built
(413 over a limit or the budget, 400 too deep); then ``strict_map_key`` and no
trailing bytes. A violation raises
``FrameError`` (a ``RemoteProtocolError``) whose ``status`` is the hint for the
answer and whose bytes ``error_reply(error)`` gives: tcpy's error map. A
message that is not msgpack, or a request that is not a map, is ``fatal``: the
connection closes after the answer. A map without a usable ``"cmd"`` is not
fatal: after the error reply the next request is read as usual.
"""

from __future__ import annotations

import codecs
import datetime
import enum
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from dataserve.core.budget import DecodeBudget
from dataserve.core.errors import DecodeError, LocalProtocolError, ProtocolError, StructureTooLarge
from dataserve.core.limits import DEFAULT_LIMITS, Limits

from .base import NEED_DATA, ConnectionClosed, Event, FrameError, NeedData, ReceiveBuffer, Role

__all__ = [
    "DEFAULT_PORT",
    "NEED_DATA",
    "Connection",
    "ConnectionClosed",
    "FrameError",
    "Message",
    "Reply",
    "Request",
    "Role",
    "error_map",
]

#: tcpy's default port.
DEFAULT_PORT = 7272

_HEADER = struct.Struct(">I")
_MAX_WIRE_LENGTH = 0xFFFFFFFF  # what 4 bytes can announce
_DATETIME_KEY = "__datetime__"
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


# --- events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request(Event):
    """A request: run ``command`` with ``params`` (keyword arguments)."""

    command: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.command, str) or not self.command:
            raise LocalProtocolError(f"a command is a non-empty string, not {self.command!r}")
        for name in self.params:
            if not isinstance(name, str):
                raise LocalProtocolError(f"parameter names are strings, not {name!r}")
        if "cmd" in self.params:
            raise LocalProtocolError('"cmd" is the command; it cannot also be a parameter')


@dataclass(frozen=True, slots=True)
class Message(Event):
    """One message that is not a request: any msgpack value (tcpy sends maps)."""

    data: Any


@dataclass(frozen=True, slots=True)
class Reply(Event):
    """The server's answer to a request: the handler's map."""

    data: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.data, dict):
            raise LocalProtocolError(
                f"a tcpy reply is a dict, not {type(self.data).__name__}: "
                "return self.success(...) or self.error(...)"
            )


def error_map(exc: BaseException) -> dict[str, Any]:
    """tcpy's error reply for an exception: ``{"error": True, "message": ...}``."""
    message = getattr(exc, "message", "") or str(exc) or type(exc).__name__
    return {"error": True, "message": message}


# --- msgpack with limits -----------------------------------------------------------


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted")


def _datetime_hook(obj: dict[Any, Any]) -> Any:
    if _DATETIME_KEY in obj and isinstance(obj.get("as_str"), str):
        return datetime.datetime.strptime(obj["as_str"], _DATETIME_FORMAT)
    return obj


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return {_DATETIME_KEY: True, "as_str": value.strftime(_DATETIME_FORMAT)}
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent in msgpack")


# Raw that is not UTF-8 (Python 2's binary str) is decoded with
# surrogateescape, through a handler that counts its uses: the unpacker
# calls it only for such bytes, so a message without any is never walked.
_RAW_ERRORS = "rawproto-tcpy-raw"
_raw_seen = [0]
_ESCAPED = re.compile("[\udc80-\udcff]")
_surrogateescape = codecs.lookup_error("surrogateescape")


def _count_raw(error: UnicodeError) -> tuple[str | bytes, int]:
    _raw_seen[0] += 1
    return _surrogateescape(error)


codecs.register_error(_RAW_ERRORS, _count_raw)


def _raw(item: Any) -> Any:
    """``item`` as it was on the wire if it is a str the unpacker had to escape."""
    if type(item) is str and _ESCAPED.search(item):
        return item.encode("utf-8", "surrogateescape")
    return item


def _raw_to_bytes(value: Any) -> Any:
    """Escaped strings back to ``bytes``, in place, keys included (no recursion)."""
    if not isinstance(value, (dict, list)):
        return _raw(value)
    stack: list[Any] = [value]
    while stack:
        container = stack.pop()
        if isinstance(container, list):
            for i, item in enumerate(container):
                if isinstance(item, (dict, list)):
                    stack.append(item)
                else:
                    container[i] = _raw(item)
            continue
        items = [(_raw(k), v) for k, v in container.items()]
        container.clear()  # rebuilt in the same order, new keys and all
        for key, item in items:
            if isinstance(item, (dict, list)):
                stack.append(item)
                container[key] = item
            else:
                container[key] = _raw(item)
    return value


def _unpack(payload: bytes, budget: DecodeBudget, hook: Callable[[dict[Any, Any]], Any]) -> Any:
    """One message's value, decoded within the core's budget for structures."""
    if not payload:
        raise FrameError("malformed msgpack: the message is empty", 400)
    seen = _raw_seen[0]
    try:
        # The budget walks the headers first (sizes, container lengths, depth,
        # the memory the value would take) and refuses before anything is built.
        value = budget.decode_msgpack(
            payload,
            raw=False,
            unicode_errors=_RAW_ERRORS,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            timestamp=3,
            object_hook=hook,
        )
    except StructureTooLarge as exc:
        raise FrameError(exc.message, 413) from None
    except DecodeError as exc:
        raise FrameError(exc.message, 400) from None
    if _raw_seen[0] != seen:  # (another thread's count may show: a walk for nothing)
        value = _raw_to_bytes(value)
    return value


def _pack(value: Any) -> bytes:
    try:
        payload: bytes = msgpack.packb(value, default=_default)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot send this message: {exc}") from None
    if len(payload) > _MAX_WIRE_LENGTH:
        raise LocalProtocolError(f"a message of {len(payload)} bytes does not fit tcpy's framing")
    return _HEADER.pack(len(payload)) + payload


# --- the connection -----------------------------------------------------------------


class _State(enum.Enum):
    IDLE = "idle"  # server: waiting for a request; client: always
    BUSY = "busy"  # server: a request is being handled
    BROKEN = "broken"  # a fatal error: answer it, then close


class Connection:
    """One side of a tcpy connection (``rawproto.proto.base.ProtocolConnection``).

    ``receive_data(bytes)`` buffers what the socket read (``None`` is EOF);
    ``next_event()`` returns the next event or ``NEED_DATA``; ``send(event)``
    returns the bytes to write; ``error_reply(error)`` the bytes that answer
    a ``FrameError``.
    """

    handshake_complete = True  # tcpy has no handshake

    def __init__(self, role: Role, limits: Limits = DEFAULT_LIMITS) -> None:
        self.role = role
        self.limits = limits
        # Every message is msgpack: the core's budget for decoded structures
        # applies, and its size limit bounds messages along with the frame's.
        self._budget = DecodeBudget.from_limits(limits)
        self._max_message = min(limits.max_frame_size, limits.max_structured_size)
        self._buffer = ReceiveBuffer()
        self._eof = False
        self._eof_reported = False
        self._state = _State.IDLE
        self._error: FrameError | None = None

    # -- state seen from outside -----------------------------------------------

    @property
    def busy(self) -> bool:
        """Server side: a request was received and its reply not yet sent."""
        return self._state is _State.BUSY

    @property
    def must_close(self) -> bool:
        """A fatal error happened: answer it and close the connection."""
        return self._state is _State.BROKEN

    @property
    def peer_closed(self) -> bool:
        """The peer sent EOF (buffered messages may still be pending)."""
        return self._eof

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buffer)

    @property
    def mid_frame(self) -> bool:
        """Part of a message has arrived and the rest has not."""
        have = len(self._buffer)
        if have == 0:
            return False
        if have < 4:
            return True
        length: int = _HEADER.unpack(self._buffer.peek(4))[0]
        return have < 4 + length

    def initiate(self) -> bytes:
        return b""

    # -- input -----------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Feed bytes read from the socket; ``None`` (or ``b""``) means EOF."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("received data after EOF")
        self._buffer.append(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA`` if the buffer holds no whole message."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except FrameError as exc:
            if exc.fatal:
                self._error = exc
                self._state = _State.BROKEN
            raise

    def _next_event(self) -> Event | NeedData:
        buf = self._buffer
        have = len(buf)
        if have < 4:
            if not self._eof:
                return NEED_DATA
            if have:
                raise FrameError(
                    f"connection closed after {have} of a message's 4 length bytes", 400
                )
            if self._eof_reported:
                return NEED_DATA
            self._eof_reported = True
            return ConnectionClosed()
        length: int = _HEADER.unpack(buf.peek(4))[0]
        if length > self._max_message:
            # Checked before a byte of the payload is buffered; the stream
            # cannot be resynchronised past it, so the connection ends.
            raise FrameError(
                f"a message of {length} bytes exceeds the limit of {self._max_message} bytes"
                + (
                    " for msgpack (max_structured_size)"
                    if self._max_message < self.limits.max_frame_size
                    else ""
                ),
                413,
            )
        if have < 4 + length:
            if self._eof:
                raise FrameError(
                    f"connection closed after {have - 4} of a message's {length} bytes", 400
                )
            return NEED_DATA
        buf.skip(4)
        value = _unpack(buf.take(length), self._budget, _datetime_hook)
        if self.role is Role.SERVER and self._state is _State.IDLE:
            request = _as_request(value)
            self._state = _State.BUSY
            return request
        return Message(value)

    # -- output ------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes that carry ``event``; raises ``LocalProtocolError`` if not allowed now."""
        if self._state is _State.BROKEN:
            raise LocalProtocolError("the peer broke the protocol: send error_reply(), then close")
        if self.role is Role.SERVER:
            if isinstance(event, Reply):
                if self._state is not _State.BUSY:
                    raise LocalProtocolError("there is no request to reply to")
                data = _pack(event.data)
                self._state = _State.IDLE
                return data
            if isinstance(event, Message):
                if self._state is not _State.BUSY:
                    raise LocalProtocolError("a message can only be sent while handling a request")
                return _pack(event.data)
            raise LocalProtocolError(f"a server cannot send {type(event).__name__}")
        if isinstance(event, Request):
            return _pack({"cmd": event.command, **event.params})
        if isinstance(event, Message):
            return _pack(event.data)
        raise LocalProtocolError(f"a client cannot send {type(event).__name__}")

    def error_reply(self, error: ProtocolError) -> bytes:
        """tcpy's error map for ``error`` (a server's answer; a client sends none).

        It also ends the exchange of the request it answers, if any.
        """
        if self.role is Role.CLIENT:
            return b""
        if self._state is _State.BUSY:
            self._state = _State.IDLE
        return _pack(error_map(error))


def _as_request(value: Any) -> Request:
    if not isinstance(value, dict):
        # tcpy cannot tell where a request of another shape begins or ends
        # its parameters: the message is refused and the connection ends.
        raise FrameError(f"a tcpy request is a msgpack map, not {_kind(value)}", 400)
    params = dict(value)
    command = params.pop("cmd", None)
    # The message itself was well formed: answer it and read the next one.
    if command is None:
        raise FrameError('the request has no "cmd"', 400, fatal=False)
    if not isinstance(command, str) or not command:
        raise FrameError(f'"cmd" must be a non-empty string, not {command!r}', 400, fatal=False)
    bad = [name for name in params if not isinstance(name, str)]
    if bad:
        raise FrameError(f"parameter names must be strings, not {bad[0]!r}", 400, fatal=False)
    return Request(command, params)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "nil"
    return f"a {type(value).__name__}"
