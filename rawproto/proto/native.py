"""The native framing, sans-IO: ``HTTPDataHandler`` requests over raw TCP.

``docs/protocol.md`` is the byte-by-byte reference, with test vectors. In
short, after a 6-byte preface each way (``89 52 50 4e`` "\\x89RPN", version
1, flags 0), every frame is::

    length     u32   bytes after this field: 8 + len(resource) + len(payload)
    kind       u8    0x01 REQUEST, 0x02 REPLY, 0x03 ERROR, 0x10 AUTH
    tag        u8    the codec's media tag of the payload (0: no payload)
    res_len    u16   length of the resource (REQUEST; 0 otherwise)
    request_id u32   chosen by the client, echoed by the server's answer
    resource   res_len bytes of UTF-8 (REQUEST only)
    payload    the rest; an ERROR's payload is a u16 code + a UTF-8 message

all integers big-endian. A client may send many requests without waiting;
answers come in any order and carry the request's id. Error codes are the
HTTP statuses with the same meaning (400, 401, 404, 408, 413, 415, 500, 503,
504).

Authentication: a server made with ``token=`` requires an AUTH frame (the
token's UTF-8 bytes as its payload, request id 0) as the first frame after
the preface. Until it has arrived, a frame's ``length`` may not exceed
``PRE_AUTH_MAX_FRAME_SIZE`` (16 KiB: 413) and any other kind is refused
(401); a wrong token is refused (401, compared in constant time); each of
these is fatal. A good token is not answered, so a client sends its first
requests right behind it. A server without a token accepts and ignores an
AUTH first frame, so a client may always send one.

Errors in a frame that can be skipped (an unknown kind, a kind the receiver
does not take, a resource that is not UTF-8) raise a non-fatal
``FrameError`` naming the request id: the frame's bytes are discarded as
they arrive (never buffered) and the connection goes on. A bad preface, a
length above ``max_frame_size`` (checked before any payload is buffered) or
a length too short for a header raise a fatal one: the stream cannot be
trusted any more. ``error_reply`` turns either into the ERROR frame to send
(a request id of 0 means the connection as a whole).

Events (frozen, slotted dataclasses)::

    Preface(version, flags)             the peer's preface arrived
    Auth(token)                         client -> server, the first frame
    Request(request_id, resource, tag, body)    client -> server
    Reply(request_id, tag, body)                server -> client
    Error(request_id, code, message)            server -> client
    ConnectionClosed()                  the peer closed between frames

Payloads stay bytes plus a tag here; the codec (``dataserve.core.codec``)
turns them into values above this layer. The constants and events are
defined in ``rawproto.proto.native_events`` and importable from here.
"""

from __future__ import annotations

import enum

from dataserve.core.errors import LocalProtocolError, ProtocolError
from dataserve.core.security import token_matches

from .base import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    FramedReceiver,
    FrameError,
    NeedData,
    Role,
)
from .native_events import (
    CODE,
    DEFAULT_MAX_FRAME_SIZE,
    HEAD_REST,
    HEADER,
    KIND_AUTH,
    KIND_ERROR,
    KIND_NAMES,
    KIND_REPLY,
    KIND_REQUEST,
    MAGIC,
    MAX_MESSAGE,
    PRE_AUTH_MAX_FRAME_SIZE,
    PREFACE,
    VERSION,
    Auth,
    Error,
    Preface,
    Reply,
    Request,
    trusted_reply,
    trusted_request,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER",
    "KIND_AUTH",
    "KIND_ERROR",
    "KIND_REPLY",
    "KIND_REQUEST",
    "MAGIC",
    "PREFACE",
    "PRE_AUTH_MAX_FRAME_SIZE",
    "VERSION",
    "Auth",
    "ConnectionClosed",
    "Error",
    "NativeConnection",
    "Preface",
    "Reply",
    "Request",
    "trusted_reply",
]


class _State(enum.Enum):
    PREFACE = "preface"
    HEADER = "header"
    BODY = "body"
    SKIP = "skip"


class _FrameReader(FramedReceiver):
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
        self._remaining = 0  # BODY / SKIP: bytes of the current frame still due
        self._header: tuple[int, int, int, int] = (0, 0, 0, 0)  # kind, tag, res_len, id

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

    @property
    def body_remaining(self) -> int:
        """Bytes of the current frame still to arrive once its header is here (else 0).

        A blocking reader may read that many at once into one buffer (see
        ``ReceiveBuffer``).
        """
        if self._state is not _State.BODY:
            return 0
        return max(0, self._remaining - len(self._buf))

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
        return f"{self._remaining} bytes of the frame missing"

    def _next(self) -> Event | NeedData:
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
        self._remaining = length - HEAD_REST
        self._state = _State.BODY

    def _skip(self, n: int) -> None:
        self._remaining = n
        self._state = _State.SKIP if n else _State.HEADER

    def _end_frame(self) -> Event:
        kind, tag, res_len, request_id = self._header
        buf = self._buf
        size = self._remaining
        self._state = _State.HEADER
        self._remaining = 0
        if kind == KIND_REQUEST:
            raw = buf.take(res_len)
            body = buf.take(size - res_len)
            try:
                resource = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(
                    "the resource is not valid UTF-8", 400, fatal=False, request_id=request_id
                ) from None
            return trusted_request(request_id, resource, tag, body)
        if kind == KIND_REPLY:
            return trusted_reply(request_id, tag, buf.take(size))
        if kind == KIND_AUTH:
            token = buf.take(size)
            if self._token is not None and not token_matches(self._token, token):
                raise FrameError("wrong token", 401)
            self._authenticated = True
            return Auth(token)
        data = buf.take(size)
        (code,) = CODE.unpack_from(data)
        return Error(request_id, code, data[CODE.size :].decode("utf-8", "replace"))


class NativeConnection(_FrameReader):
    """One end of a native-framing connection.

    ``role`` decides which frames it takes: a server takes REQUEST (and AUTH
    first), a client REPLY and ERROR. ``max_frame_size`` bounds the
    ``length`` field of any frame it receives. A server with ``token``
    requires it in an AUTH first frame (see the module docstring): until
    then ``handshake_complete`` stays false, so the engine's handshake
    deadline covers the token too.
    """

    def __init__(
        self,
        role: Role,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        token: bytes | None = None,
    ) -> None:
        if token is not None and role is not Role.SERVER:
            raise LocalProtocolError("only a server checks a token; a client sends Auth")
        super().__init__(role, max_frame_size, token)
        self._preface_sent = False

    # --- sending ----------------------------------------------------------------

    def initiate(self) -> bytes:
        return self.send(Preface())

    def send(self, event: Event) -> bytes:
        if type(event) is Reply or type(event) is Request:
            head, body = self.send_parts(event)
            return head + body if body else head
        if isinstance(event, (Reply, Request)):  # a subclass
            return b"".join(self.send_parts(event))
        if isinstance(event, Auth):
            self._require(Role.CLIENT, event)
            if len(event.token) > PRE_AUTH_MAX_FRAME_SIZE - HEAD_REST:
                raise LocalProtocolError(
                    f"a token is at most {PRE_AUTH_MAX_FRAME_SIZE - HEAD_REST} bytes"
                )
            return HEADER.pack(HEAD_REST + len(event.token), KIND_AUTH, 0, 0, 0) + event.token
        if isinstance(event, Error):
            self._require(Role.SERVER, event)
            message = event.message.encode("utf-8", "replace")[:MAX_MESSAGE]
            length = HEAD_REST + CODE.size + len(message)
            head = HEADER.pack(length, KIND_ERROR, 0, 0, event.request_id)
            return b"".join((head, CODE.pack(event.code), message))
        if isinstance(event, Preface):
            if self._preface_sent:
                raise LocalProtocolError("the preface was already sent")
            if event.version != VERSION or not 0 <= event.flags <= 0xFF:
                raise LocalProtocolError(f"this side speaks version {VERSION} with flags 0..255")
            self._preface_sent = True
            return MAGIC + bytes([event.version, event.flags])
        raise LocalProtocolError(f"the native framing cannot send {type(event).__name__}")

    def send_parts(self, event: Request | Reply) -> tuple[bytes, bytes]:
        """A REQUEST or REPLY as two pieces to send in order: the frame header (with
        the resource), and the payload, not copied (``send`` joins them)."""
        body = event.body
        if type(event) is Reply or isinstance(event, Reply):
            if self.role is not Role.SERVER or not self._preface_sent:
                self._require(Role.SERVER, event)
            length = HEAD_REST + len(body)
            return HEADER.pack(length, KIND_REPLY, event.tag, 0, event.request_id), body
        self._require(Role.CLIENT, event)
        if event.request_id == 0:
            raise LocalProtocolError("request id 0 is reserved for the connection")
        resource = event.resource.encode("utf-8")
        if len(resource) > 0xFFFF:
            raise LocalProtocolError(
                f"a resource is at most 65535 bytes of UTF-8, not {len(resource)}"
            )
        length = HEAD_REST + len(resource) + len(body)
        head = HEADER.pack(length, KIND_REQUEST, event.tag, len(resource), event.request_id)
        return head + resource, body

    def _require(self, role: Role, event: Event) -> None:
        if self.role is not role:
            raise LocalProtocolError(f"a {self.role.value} does not send {type(event).__name__}")
        if not self._preface_sent:
            raise LocalProtocolError("send the preface (initiate()) first")

    def error_reply(self, error: ProtocolError) -> bytes:
        """The ERROR frame answering ``error`` (preceded by our preface if not sent yet).

        A client has no error frames to send: b"".
        """
        if self.role is not Role.SERVER:
            return b""
        head = b"" if self._preface_sent else self.initiate()
        request_id = getattr(error, "request_id", 0)
        return head + self.send(Error(request_id, error.status, error.message))
