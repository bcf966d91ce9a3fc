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

What a header or the preface may say, and whether the peer has given its
token, is decided by ``rawproto.proto.native_header``; the reader keeps the
position in the stream and gathers each frame's bytes.
"""

from __future__ import annotations

import enum

from dataserve.core.errors import LocalProtocolError

from .base import NEED_DATA, Event, FramedReceiver, FrameError, NeedData, Role
from .native_events import (
    CODE,
    HEAD_REST,
    HEADER,
    KIND_AUTH,
    KIND_REPLY,
    KIND_REQUEST,
    PREFACE,
    Error,
    trusted_reply,
    trusted_request,
)
from .native_header import HeaderCheck, read_preface

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
    byte by byte, each frame's header (by its ``HeaderCheck``) before any of
    its body is buffered, and a frame the receiver does not take is skipped
    as it arrives.
    """

    def __init__(self, role: Role, max_frame_size: int, token: bytes | None) -> None:
        self.role = role
        self._check = HeaderCheck(role, max_frame_size, token)
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
    def max_frame_size(self) -> int:
        return self._check.max_frame_size

    @property
    def handshake_complete(self) -> bool:
        return self._check.authenticated and self._state is not _State.PREFACE

    @property
    def awaiting_auth(self) -> bool:
        """A server with a token has not received it yet."""
        return not self._check.authenticated

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
        preface = read_preface(self._buf.peek(len(PREFACE)))
        if preface is None:
            return NEED_DATA
        self._buf.skip(len(PREFACE))
        self._state = _State.HEADER
        return preface

    def _start_frame(
        self, length: int, kind: int, tag: int, res_len: int, request_id: int
    ) -> Event | None:
        try:
            body = self._check.frame(length, kind, res_len, request_id)
        except FrameError as exc:
            if not exc.fatal:  # the stream stays in step: the frame is skipped
                self._skip(length - HEAD_REST)
            raise
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
        self._remaining = body  # AUTH or ERROR: the body is taken whole
        self._state = _State.BODY
        return None

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
            return self._check.token(data)
        (code,) = CODE.unpack_from(data)
        return Error(request_id, code, data[CODE.size :].decode("utf-8", "replace"))
