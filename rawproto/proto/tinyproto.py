"""tinyproto's wire protocol, sans-IO, byte for byte as tinyproto 2.x and 3.0 speak it.

The wire::

    on connect        each side sends 0xff and expects 0xff
                      (a server over its connection limit sends 0xfe instead)
    one message       sender:   4-byte big-endian length
                      receiver: one byte, 0xff to accept, another to refuse
                                (0xfc here: a length above the limit)
                      sender:   the payload, only if accepted

Either side may send messages; each message is one announce / answer /
payload exchange. Lengths above ``MSG_MAX_SIZE`` (0xf0ffffff) are never
valid, which is what keeps a length's first byte (0x00 to 0xf0) apart from
the answers (0xf1 to 0xff): "any other current or future signal", as the
original's comment on ``MSG_MAX_SIZE`` says. After a refusal the connection
stays usable: the sender did not send the payload, so both sides are still
in step (tinyproto 2.x keeps the connection; 3.0's receiving thread stops).

The originals never announce while receiving a message, so neither does
this one (``send(Announce)`` while a message is coming in raises). But both
sides may announce at once (a client sends its next message just as the
server answers the last one): each then receives a length where it waits
for an answer. This side tells them apart by the byte alone, never by how
the bytes were cut into reads: where an answer is due, 0xff accepts, 0xf1
to 0xfe refuse (the code is in ``Refused``), and 0x00 to 0xf0 begin the
peer's own announce, reported as ``Announce``; the peer's answer to ours
then follows our answer to theirs, before its payload. Two peers of this
implementation so exchange both messages. That is why this side refuses
with 0xfc (``SC_REFUSED``), not the originals' 0x00 (the first byte of
every length below 16 MiB): an original sender takes any byte but 0xff as
a refusal, and an original receiver refuses only lengths above
``MSG_MAX_SIZE``, which no sender announces, so nothing the originals send
changes meaning. (The originals read the byte after their announce as its
answer whatever it is, so an original peer that announces at the same
moment as this side falls out of step, as two originals do.)

Events (frozen, slotted dataclasses)::

    Handshake()               the peer's 0xff arrived
    Announce(size)            the peer will send a message of size bytes:
                              answer send(Accept()) or send(Refuse());
                              also sent by us to start a message of ours
    Message(data)             a whole message from the peer (a bytearray, as
                              the originals deliver it); also sent by us once
                              our announce was accepted
    Accepted(size)            the peer accepted our announce: send(Message(data))
    Refused(size, code)       the peer refused our announce (0xfc: too large)
    ConnectionClosed()        the peer closed between messages

An announced length above ``max_message_size`` raises ``FrameError`` (413,
not fatal) before any of the payload is buffered; ``error_reply`` gives the
refusal byte to answer it with.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from dataserve.core.errors import LocalProtocolError, ProtocolError

from .base import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    FramedReceiver,
    FrameError,
    NeedData,
    ReceiveBuffer,
    Role,
)

__all__ = [
    "HANDSHAKE",
    "MSG_MAX_SIZE",
    "SC_CONFLICT",
    "SC_CONLIMIT",
    "SC_GENERIC_ERROR",
    "SC_OK",
    "SC_REFUSED",
    "Accept",
    "Accepted",
    "Announce",
    "ConnectionClosed",
    "Handshake",
    "Message",
    "Refuse",
    "Refused",
    "TinyProtoConnection",
]

# The originals' status codes, with their names.
SC_OK = 0xFF
SC_GENERIC_ERROR = 0x00
SC_CONLIMIT = 0xFE
SC_CONFLICT = 0xFD
#: This implementation's refusal of an announced message (over the limit);
#: unlike 0x00 it cannot be the first byte of a length (see the docstring).
SC_REFUSED = 0xFC
#: The largest length tinyproto allows ("never change this value").
MSG_MAX_SIZE = 0xF0FFFFFF
#: Where an answer is due, a byte up to this begins a length, not an answer.
_MAX_LENGTH_LEAD = MSG_MAX_SIZE >> 24
HANDSHAKE = bytes([SC_OK])

_LENGTH = struct.Struct(">I")
_NAMES = {
    SC_GENERIC_ERROR: "refused",
    SC_REFUSED: "refused",
    SC_CONLIMIT: "connection limit",
    SC_CONFLICT: "conflict",
}


def _check_size(size: int) -> None:
    if not 0 <= size <= MSG_MAX_SIZE:
        raise LocalProtocolError(f"a tinyproto message is 0..{MSG_MAX_SIZE} bytes, not {size}")


@dataclass(frozen=True, slots=True)
class Handshake(Event):
    """The opening byte, 0xff (received: the peer is ready)."""


@dataclass(frozen=True, slots=True)
class Announce(Event):
    """A message of ``size`` bytes is about to be sent."""

    size: int

    def __post_init__(self) -> None:
        _check_size(self.size)


@dataclass(frozen=True, slots=True)
class Accept(Event):
    """Our answer to the peer's ``Announce``: send the payload (0xff)."""


@dataclass(frozen=True, slots=True)
class Refuse(Event):
    """Our answer to the peer's ``Announce`` (0xfc), or 0xfe instead of the handshake.

    The code is a byte from 0xf1 to 0xfe: lower ones begin a length, so a
    peer waiting for an answer would read the refusal as an announce.
    """

    code: int = SC_REFUSED

    def __post_init__(self) -> None:
        if not _MAX_LENGTH_LEAD < self.code < SC_OK:
            raise LocalProtocolError(
                f"a refusal code is a byte from 0xf1 to 0xfe (lower ones begin a length), "
                f"not {self.code:#x}"
            )


@dataclass(frozen=True, slots=True)
class Message(Event):
    """A whole message: received from the peer, or ours once accepted."""

    data: bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Accepted(Event):
    """The peer accepted our ``Announce(size)``."""

    size: int


@dataclass(frozen=True, slots=True)
class Refused(Event):
    """The peer refused our ``Announce(size)`` with ``code`` (0x00: too large)."""

    size: int
    code: int

    @property
    def reason(self) -> str:
        return _NAMES.get(self.code, f"code 0x{self.code:02x}")


class _Recv(enum.Enum):
    LENGTH = "length"  # between messages: 4 length bytes come next
    DECIDE = "decide"  # the peer announced; we have not answered yet
    PAYLOAD = "payload"  # accepted: the payload comes next


class _Send(enum.Enum):
    IDLE = "idle"
    AWAIT_ANSWER = "await-answer"  # we announced; the next byte is the answer
    ACCEPTED = "accepted"  # the peer accepted: our payload is due


class TinyProtoConnection(FramedReceiver):
    """One end of a tinyproto connection (either role: the protocol is symmetric).

    ``max_message_size`` bounds what the peer may send us (refused above it);
    the default is the protocol's own maximum.
    """

    def __init__(self, role: Role = Role.SERVER, *, max_message_size: int = MSG_MAX_SIZE) -> None:
        self.role = role
        self.max_message_size = min(max_message_size, MSG_MAX_SIZE)
        super().__init__()
        self._their_handshake = False
        self._our_handshake = False
        self._recv = _Recv.LENGTH
        self._recv_size = 0
        self._send = _Send.IDLE
        self._send_size = 0

    # --- state ------------------------------------------------------------------

    @property
    def handshake_complete(self) -> bool:
        """The peer's 0xff has arrived."""
        return self._their_handshake

    @property
    def receiving(self) -> bool:
        """A message of the peer's is under way (announced, or its length partly here)."""
        return self._recv is not _Recv.LENGTH or (self._their_handshake and bool(self._buf))

    @property
    def announced(self) -> bool:
        """The peer announced a message that has not arrived whole yet."""
        return self._recv is not _Recv.LENGTH

    @property
    def awaiting_answer(self) -> bool:
        """We announced a message and wait for the peer's answer or owe the payload."""
        return self._send is not _Send.IDLE

    @property
    def mid_frame(self) -> bool:
        return self.receiving or self.awaiting_answer

    @property
    def can_announce(self) -> bool:
        """A new message of ours may be announced now."""
        return (
            self._our_handshake
            and self._their_handshake
            and self._send is _Send.IDLE
            and self._recv is _Recv.LENGTH
            and not self._eof
            and self._broken is None
        )

    # --- receiving --------------------------------------------------------------

    def initiate(self) -> bytes:
        return self.send(Handshake())

    def _at_eof(self) -> Event | NeedData:
        if not self._their_handshake:
            raise self._fatal(
                "the peer closed before its handshake byte (as a tinyproto server "
                "over its connection limit does)"
            )
        if self._recv is not _Recv.LENGTH or self._buf:
            raise self._fatal("the peer closed in the middle of a message")
        if self._send is _Send.AWAIT_ANSWER:
            raise self._fatal("the peer closed without answering our message")
        return self._closed()

    def _next(self) -> Event | NeedData:
        buf = self._buf
        if not self._their_handshake:
            if not buf:
                return NEED_DATA
            code = buf.byte()
            buf.skip(1)
            if code == SC_OK:
                self._their_handshake = True
                return Handshake()
            if code == SC_CONLIMIT:
                raise FrameError("the server is over its connection limit (0xfe)", 503)
            if code == SC_GENERIC_ERROR:
                # tinyproto 2.x/3.0 servers over their limit send bytearray(0xfe):
                # 254 zero bytes, not the 0xfe they mean.
                raise FrameError(
                    "the server refused the connection (0x00: a tinyproto 2.x/3.0 server "
                    "over its connection limit sends zero bytes)",
                    503,
                )
            raise FrameError(f"bad handshake byte 0x{code:02x}: a tinyproto peer sends 0xff", 400)
        recv = self._recv
        if self._send is _Send.AWAIT_ANSWER and recv is not _Recv.DECIDE:
            if not buf:
                return NEED_DATA
            # Between the peer's messages, a byte that can begin a length is
            # the peer's own announce crossing ours (see the module
            # docstring); once we accepted theirs, its answer to ours comes
            # before its payload, so the next byte is that answer.
            if recv is _Recv.PAYLOAD or buf.byte() > _MAX_LENGTH_LEAD:
                return self._answer(buf)
        if recv is _Recv.LENGTH:
            if len(buf) < 4:
                return NEED_DATA
            (size,) = buf.unpack_from(_LENGTH)
            if size > self.max_message_size:
                # Decided from the length alone: the sender waits for our
                # answer and sends nothing more, so the stream stays in step.
                raise FrameError(
                    f"message of {size} bytes is over the limit of {self.max_message_size} bytes",
                    413,
                    fatal=False,
                )
            self._recv = _Recv.DECIDE
            self._recv_size = size
            return Announce(size)
        if recv is _Recv.DECIDE:
            return NEED_DATA  # the peer waits for our answer
        size = self._recv_size
        if len(buf) < size:
            return NEED_DATA
        data = buf.take_bytearray(size)
        self._recv = _Recv.LENGTH
        return Message(data)

    def _answer(self, buf: ReceiveBuffer) -> Event:
        code = buf.byte()
        buf.skip(1)
        size = self._send_size
        if code == SC_OK:
            self._send = _Send.ACCEPTED
            return Accepted(size)
        self._send = _Send.IDLE
        return Refused(size, code)

    # --- sending ----------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        if isinstance(event, Message):
            if self._send is not _Send.ACCEPTED:
                raise LocalProtocolError(
                    "a message's payload is sent once its announce is accepted"
                )
            if len(event.data) != self._send_size:
                raise LocalProtocolError(
                    f"announced {self._send_size} bytes but the message has {len(event.data)}"
                )
            self._send = _Send.IDLE
            data = event.data
            return data if isinstance(data, bytes) else bytes(data)
        if isinstance(event, Announce):
            if not self.can_announce:
                raise LocalProtocolError(
                    "cannot announce a message now (handshake not done, a message of ours "
                    "in progress, or one of the peer's coming in)"
                )
            self._send = _Send.AWAIT_ANSWER
            self._send_size = event.size
            return _LENGTH.pack(event.size)
        if isinstance(event, Accept):
            if self._recv is not _Recv.DECIDE:
                raise LocalProtocolError("nothing announced to accept")
            self._recv = _Recv.PAYLOAD
            return HANDSHAKE
        if isinstance(event, Refuse):
            if self._recv is _Recv.DECIDE:
                self._recv = _Recv.LENGTH
                return bytes([event.code])
            if not self._our_handshake and event.code == SC_CONLIMIT:
                self._our_handshake = True  # in its place: the connection ends here
                return bytes([SC_CONLIMIT])
            raise LocalProtocolError("nothing announced to refuse")
        if isinstance(event, Handshake):
            if self._our_handshake:
                raise LocalProtocolError("the handshake byte was already sent")
            self._our_handshake = True
            return HANDSHAKE
        raise LocalProtocolError(f"tinyproto cannot send {type(event).__name__}")

    def error_reply(self, error: ProtocolError) -> bytes:
        """0xfc for an over-limit message, 0xfe instead of the handshake at the limit."""
        if error.status == 413 and not getattr(error, "fatal", True):
            return bytes([SC_REFUSED])
        if error.status == 503 and not self._our_handshake:
            self._our_handshake = True
            return bytes([SC_CONLIMIT])
        return b""
