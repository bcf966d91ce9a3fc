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
turns them into values above this layer.

Large payloads, as one buffer: once a REQUEST's header and resource (or a
REPLY's header) have arrived, ``payload_size`` says that the next bytes of
the stream are that frame's payload, of that size. Instead of feeding them
with ``receive_data``, the caller may read them into one buffer of its own
(a socket's ``recv_into``, ``asyncio.BufferedProtocol``), copy the few
already buffered to its front (``payload_prefix``) and hand the whole
payload over with ``receive_payload(payload)``: the event then carries that
very object as its body, never copied. ``receive_payload(None)`` says the
caller consumed the payload itself (streamed it into a file): the event
comes with an empty body.

The constants and events are defined in ``rawproto.proto.native_events``,
the receiving half (``FrameReader``) in ``rawproto.proto.native_reader``;
both are importable from here.
"""

from __future__ import annotations

from dataserve.core.errors import LocalProtocolError, ProtocolError

from .base import ConnectionClosed, Event, Role
from .native_events import (
    CODE,
    DEFAULT_MAX_FRAME_SIZE,
    HEAD_REST,
    HEADER,
    KIND_AUTH,
    KIND_ERROR,
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
)
from .native_reader import FrameReader

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
    "FrameReader",
    "NativeConnection",
    "Preface",
    "Reply",
    "Request",
    "trusted_reply",
]


class NativeConnection(FrameReader):
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
            self._require(Role.CLIENT, "Auth")
            if len(event.token) > PRE_AUTH_MAX_FRAME_SIZE - HEAD_REST:
                raise LocalProtocolError(
                    f"a token is at most {PRE_AUTH_MAX_FRAME_SIZE - HEAD_REST} bytes"
                )
            return HEADER.pack(HEAD_REST + len(event.token), KIND_AUTH, 0, 0, 0) + event.token
        if isinstance(event, Error):
            self._require(Role.SERVER, "Error")
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
            return self.reply_head(event.request_id, event.tag, len(body)), body
        return self.request_head(event.request_id, event.resource, event.tag, len(body)), body

    def reply_head(self, request_id: int, tag: int, size: int) -> bytes:
        """The header of a REPLY whose ``size``-byte payload the caller sends after it."""
        if self.role is not Role.SERVER or not self._preface_sent:
            self._require(Role.SERVER, "Reply")
        return HEADER.pack(HEAD_REST + size, KIND_REPLY, tag, 0, request_id)

    def request_head(self, request_id: int, resource: str, tag: int, size: int) -> bytes:
        """The header and resource of a REQUEST whose ``size``-byte payload the caller
        sends after it (in as many pieces as it likes: a file, say)."""
        if self.role is not Role.CLIENT or not self._preface_sent:
            self._require(Role.CLIENT, "Request")
        if request_id == 0:
            raise LocalProtocolError("request id 0 is reserved for the connection")
        raw = resource.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise LocalProtocolError(f"a resource is at most 65535 bytes of UTF-8, not {len(raw)}")
        length = HEAD_REST + len(raw) + size
        if length > 0xFFFFFFFF:
            raise LocalProtocolError(f"a payload of {size} bytes does not fit one frame")
        return HEADER.pack(length, KIND_REQUEST, tag, len(raw), request_id) + raw

    def _require(self, role: Role, what: str) -> None:
        if self.role is not role:
            raise LocalProtocolError(f"a {self.role.value} does not send {what}")
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
