"""The receiving half of the native framing: preface, token, frames, payloads.

``FrameReader`` is what ``rawproto.proto.native.NativeConnection`` parses
with; the wire format is in that module's docstring and, byte by byte, in
``docs/protocol.md``. It is a state machine over the one receive buffer:

* the preface, checked byte by byte as it arrives;
* each frame's 12-byte header, checked (length against ``max_frame_size``,
  kind, request id, resource length) before any of its body is buffered;
* a REQUEST's resource, then its payload; a REPLY's payload; an AUTH or
  ERROR frame's body, taken whole;
* a frame the receiver does not take, skipped (discarded) as it arrives.

While a payload is due, ``payload_size`` announces it: the caller may supply
it as one buffer (``payload_prefix``, ``receive_payload``) instead of
feeding its bytes.
"""

from __future__ import annotations

import enum

from dataserve.core.errors import LocalProtocolError
from dataserve.core.security import token_matches

from .base import NEED_DATA, Event, FramedReceiver, FrameError, NeedData, Role
from .native_events import (
    CODE,
    HEAD_REST,
    HEADER,
    KIND_AUTH,
    KIND_ERROR,
    KIND_NAMES,
    KIND_REPLY,
    KIND_REQUEST,
    MAGIC,
    PRE_AUTH_MAX_FRAME_SIZE,
    PREFACE,
    VERSION,
    Auth,
    Error,
    Preface,
    trusted_reply,
    trusted_request,
)

__all__ = ["FrameReader"]


class _State(enum.Enum):
    PREFACE = "preface"
    HEADER = "header"
    RESOURCE = "resource"  # a REQUEST's resource: taken before its payload
    PAYLOAD = "payload"  # a REQUEST's or REPLY's payload (``payload_size`` bytes)
    BODY = "body"  # an AUTH or ERROR frame's body, taken whole
    SKIP = "skip"


class FrameReader(FramedReceiver):
    """The receiving half of ``NativeConnection``: the preface, the token, the frames.

    A state machine over the one receive buffer: the preface is checked
    byte by byte, each frame's header before any of its body is buffered,
    and a frame the receiver does not take is skipped as it arrives.
    """

    def __init__(self, role: Role, max_frame_size: int, token: bytes | None) -> None:
        self.role = role
        self.max_frame_size = max_frame_size
        self._accepts = (KIND_REQUEST,) if role is Role.SERVER else (KIND_REPLY, KIND_ERROR)
        self._token = token or None
        # The first frame after the preface may be AUTH (required with a token).
        self._first_frame = role is Role.SERVER
        self._authenticated = self._token is None
        super().__init__()
        self._state = _State.PREFACE
        # RESOURCE / BODY / SKIP: bytes of the current frame still due.
        self._remaining = 0
        self._frame_body = 0  # bytes after the header, as the frame announced
        self._header: tuple[int, int, int, int] = (0, 0, 0, 0)  # kind, tag, res_len, id
        self._resource = ""
        #: While a REQUEST's or REPLY's payload is due (its header and resource are
        #: in): its size, which ``receive_payload`` may supply as one buffer; else 0.
        self.payload_size = 0
        self._supplied: Event | None = None  # the event a receive_payload completed

    # --- state ------------------------------------------------------------------

    @property
    def handshake_complete(self) -> bool:
        return self._authenticated and self._state is not _State.PREFACE

    @property
    def awaiting_auth(self) -> bool:
        """A server with a token has not received it yet."""
        return not self._authenticated

    @property
    def mid_frame(self) -> bool:
        return self._state is not _State.HEADER or len(self._buf) > 0

    # --- a payload as one buffer --------------------------------------------------

    @property
    def payload_request_id(self) -> int:
        """The request id of the frame whose payload is pending (0 if none is)."""
        return self._header[3] if self.payload_size else 0

    @property
    def payload_buffered(self) -> int:
        """How many bytes of the pending payload (``payload_size``) are buffered already."""
        return min(len(self._buf), self.payload_size)

    def payload_prefix(self, into: memoryview) -> int:
        """Copy the buffered bytes of the pending payload to the front of ``into``;
        return how many. They stay buffered until ``receive_payload``."""
        return self._buf.copy_into(into, self.payload_buffered)

    def receive_payload(self, payload: bytes | None) -> None:
        """The pending payload, whole (``payload_size`` bytes, the buffered ones included).

        ``next_event()`` then returns the frame's event with ``payload`` as its
        body, the same object. ``None``: the caller took the payload's bytes
        itself (they went to a file); the event's body is empty.
        """
        size = self.payload_size
        if self._state is not _State.PAYLOAD or not size:
            raise LocalProtocolError("no payload is pending")
        if payload is not None and len(payload) != size:
            raise LocalProtocolError(f"the pending payload is {size} bytes, not {len(payload)}")
        self._buf.skip(size)
        self._state = _State.HEADER
        self.payload_size = 0
        self._supplied = self._complete(payload if payload is not None else b"")

    # --- receiving --------------------------------------------------------------

    def _at_eof(self) -> Event | NeedData:
        if self._state is not _State.HEADER or self._buf:
            raise self._fatal(f"the peer closed in the middle of a frame ({self._where()})")
        return self._closed()

    def _where(self) -> str:
        if self._state is _State.PREFACE:
            return "preface"
        if self._state is _State.HEADER:
            return f"{len(self._buf)} of {HEADER.size} header bytes"
        return f"{self._frame_body} bytes of the frame missing"

    def _next(self) -> Event | NeedData:
        supplied = self._supplied
        if supplied is not None:
            self._supplied = None
            return supplied
        while True:
            state = self._state
            buf = self._buf
            if state is _State.HEADER:
                if len(buf) < HEADER.size:
                    return NEED_DATA
                length, kind, tag, res_len, request_id = buf.unpack_from(HEADER)
                event = self._start_frame(length, kind, tag, res_len, request_id)
                if event is not None:
                    return event
            elif state is _State.PAYLOAD:
                size = self.payload_size
                if len(buf) < size:
                    return NEED_DATA
                self._state = _State.HEADER
                self.payload_size = 0
                return self._complete(buf.take(size))
            elif state is _State.RESOURCE:
                if len(buf) < self._header[2]:
                    return NEED_DATA
                event = self._take_resource()
                if event is not None:
                    return event
            elif state is _State.BODY:
                if len(buf) < self._remaining:
                    return NEED_DATA
                return self._end_frame()
            elif state is _State.SKIP:
                self._remaining -= buf.skip(self._remaining)
                if self._remaining:
                    return NEED_DATA
                self._state = _State.HEADER
            else:
                return self._preface()

    def _preface(self) -> Event | NeedData:
        buf = self._buf
        seen = buf.peek(len(PREFACE))
        # Checked byte by byte as they arrive: "GET " or a TLS hello fails on
        # its first byte instead of waiting for a whole preface.
        if not MAGIC.startswith(seen[: len(MAGIC)]):
            got = seen[: len(MAGIC)].hex(" ")
            raise FrameError(
                f"not the rawproto native protocol: expected the preface "
                f"{MAGIC.hex(' ')}, got {got}",
                400,
            )
        if len(seen) < len(PREFACE):
            return NEED_DATA
        version, flags = seen[4], seen[5]
        if version != VERSION:
            raise FrameError(
                f"unsupported native protocol version {version}; this side speaks {VERSION}",
                400,
            )
        buf.skip(len(PREFACE))
        self._state = _State.HEADER
        return Preface(version, flags)

    def _start_frame(
        self, length: int, kind: int, tag: int, res_len: int, request_id: int
    ) -> Event | None:
        if self._first_frame:
            self._first_frame = False
            if kind == KIND_AUTH:
                self._start_auth(length, res_len, request_id)
                return None
            if not self._authenticated:
                # Decided from the header: nothing of the frame is read.
                raise FrameError(
                    "this server requires a token: send it in an AUTH frame first", 401
                )
        if length > self.max_frame_size:
            raise FrameError(
                f"frame of {length} bytes is over the limit of {self.max_frame_size} bytes",
                413,
                request_id=request_id,
            )
        if length < HEAD_REST:
            raise FrameError(
                f"frame length {length} is shorter than the {HEAD_REST} header bytes it counts",
                400,
                request_id=request_id,
            )
        body = length - HEAD_REST
        if kind not in self._accepts:
            self._skip(body)
            name = KIND_NAMES.get(kind)
            what = f"a {name} frame" if name else f"unknown frame kind 0x{kind:02x}"
            raise FrameError(
                f"{what} is not accepted by the {self.role.value}",
                400,
                fatal=False,
                request_id=request_id,
            )
        if kind == KIND_REQUEST and request_id == 0:
            raise FrameError("request id 0 is reserved for the connection", 400)
        if res_len > body or (res_len and kind != KIND_REQUEST):
            self._skip(body)
            raise FrameError(
                f"resource length {res_len} does not fit a {kind:#04x} frame of {length} bytes",
                400,
                fatal=False,
                request_id=request_id,
            )
        if kind == KIND_ERROR and body < CODE.size:
            self._skip(body)
            raise FrameError(
                "an ERROR frame needs at least its 2-byte code",
                400,
                fatal=False,
                request_id=request_id,
            )
        self._header = (kind, tag, res_len, request_id)
        self._frame_body = body
        whole = len(self._buf) >= body  # the usual small frame: all in one read
        if kind == KIND_REPLY:
            if whole:
                return trusted_reply(request_id, tag, self._buf.take(body) if body else b"")
            self.payload_size = body
            self._state = _State.PAYLOAD
            return None
        if kind == KIND_REQUEST:
            self._remaining = body
            self._state = _State.RESOURCE
            if whole:
                event = self._take_resource()
                if event is None:  # a payload: it is here too
                    self._state = _State.HEADER
                    self.payload_size = 0
                    return self._complete(self._buf.take(body - res_len))
                return event
            return None
        self._remaining = body
        self._state = _State.BODY
        return None

    def _start_auth(self, length: int, res_len: int, request_id: int) -> None:
        # Fatal, all of them: an unauthenticated peer gets no second try on
        # this connection, and nothing of an oversized frame is buffered.
        if length > PRE_AUTH_MAX_FRAME_SIZE:
            raise FrameError(
                f"an AUTH frame of {length} bytes is over the limit of "
                f"{PRE_AUTH_MAX_FRAME_SIZE} bytes before authentication",
                413,
            )
        if length < HEAD_REST or res_len or request_id:
            raise FrameError("an AUTH frame has no resource and request id 0", 400)
        self._header = (KIND_AUTH, 0, 0, 0)
        self._remaining = self._frame_body = length - HEAD_REST
        self._state = _State.BODY

    def _skip(self, n: int) -> None:
        self._remaining = n
        self._state = _State.SKIP if n else _State.HEADER

    def _take_resource(self) -> Event | None:
        """A REQUEST's resource is in: decode it; its payload is due next (or
        the request is complete, if it has none)."""
        res_len, request_id = self._header[2], self._header[3]
        raw = self._buf.take(res_len)
        payload = self._remaining - res_len
        try:
            self._resource = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._skip(payload)  # the payload is discarded as it arrives
            raise FrameError(
                "the resource is not valid UTF-8", 400, fatal=False, request_id=request_id
            ) from None
        self._remaining = 0
        if not payload:
            self._state = _State.HEADER
            return self._complete(b"")
        self.payload_size = payload
        self._state = _State.PAYLOAD
        return None

    def _complete(self, payload: bytes) -> Event:
        """The event of the REQUEST or REPLY whose payload this is."""
        kind, tag, _, request_id = self._header
        if kind == KIND_REQUEST:
            resource, self._resource = self._resource, ""
            return trusted_request(request_id, resource, tag, payload)
        return trusted_reply(request_id, tag, payload)

    def _end_frame(self) -> Event:
        """An AUTH or ERROR frame's body is in."""
        kind, _, _, request_id = self._header
        size = self._remaining
        self._state = _State.HEADER
        self._remaining = 0
        data = self._buf.take(size)
        if kind == KIND_AUTH:
            if self._token is not None and not token_matches(self._token, data):
                raise FrameError("wrong token", 401)
            self._authenticated = True
            return Auth(data)
        (code,) = CODE.unpack_from(data)
        return Error(request_id, code, data[CODE.size :].decode("utf-8", "replace"))
