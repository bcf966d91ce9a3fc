"""Fuzz target: tinyproto's sans-IO parser (``rawproto.proto.tinyproto``).

The driver plays a tinyproto peer that answers every announce (refusing
some sizes), so the fuzzer reaches the handshake, length, decision and
payload states. ``ANNOUNCING`` also announces a message of its own after
some messages and sends it once accepted; the hypothesis state machine in
``tests/fuzz`` uses it, with the peer's answers and with the peer's next
announce crossing ours. Where an answer is due the parser reads the byte
alone (0x00-0xf0 begin a length, 0xf1-0xff answer), so no valid stream
needs a pause: every cut gives the same events.

Run: ``python fuzz/run.py --seconds 60 tinyproto``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from rawproto.proto.base import Event, Role
from rawproto.proto.tinyproto import (
    HANDSHAKE,
    SC_CONLIMIT,
    SC_GENERIC_ERROR,
    SC_OK,
    SC_REFUSED,
    Accept,
    Accepted,
    Announce,
    Handshake,
    Message,
    Refuse,
    Refused,
    TinyProtoConnection,
)

from ._main import exec_target
from ._stream import Run, Unit, check_stream, encode_input, err, ev, stream_of

#: Small, so that over-limit announces (413, refused) are common.
MAX_MESSAGE = 48
_LENGTH = struct.Struct(">I")


# The driver's policy, a function of sizes only (so the trace cannot depend
# on how the bytes were cut), and what a valid peer therefore sends.
def refuses(size: int) -> bool:
    return size % 4 == 3


def announces_after(size: int) -> bool:
    return size % 3 == 1


def our_size(size: int) -> int:
    return size % 5


class TinyProtoDriver:
    has_client = False  # the protocol is symmetric: one role covers it

    def __init__(self, announce: bool) -> None:
        self.announce = announce

    def new(self, client: bool) -> TinyProtoConnection:
        return TinyProtoConnection(Role.SERVER, max_message_size=MAX_MESSAGE)

    def react(self, conn: Any, event: Event, run: Run) -> bytes:
        if isinstance(event, Announce):
            return conn.send(Refuse() if refuses(event.size) else Accept())  # type: ignore[no-any-return]
        if (
            self.announce
            and isinstance(event, Message)
            and announces_after(len(event.data))
            and conn.can_announce
        ):
            run.note("announced")
            return conn.send(Announce(our_size(len(event.data))))  # type: ignore[no-any-return]
        if isinstance(event, Accepted):
            return conn.send(Message(b"m" * event.size))  # type: ignore[no-any-return]
        return b""

    def check(self, conn: Any, run: Run) -> None:
        handshakes = sum(isinstance(e, Handshake) for e in run.events)
        assert handshakes <= 1, "two handshakes reported"
        assert conn.handshake_complete == (handshakes == 1)
        answers = sum(isinstance(e, (Accepted, Refused)) for e in run.events)
        # Our payload goes out as soon as it is accepted, so we wait exactly
        # while an announce of ours has no answer.
        assert conn.awaiting_answer == (run.notes.get("announced", 0) > answers)
        if conn.awaiting_answer or not conn.handshake_complete:
            assert not conn.can_announce

    def check_error_reply(self, error: Exception, reply: bytes) -> None:
        status, fatal = getattr(error, "status", 0), getattr(error, "fatal", True)
        if status == 413 and not fatal:
            assert reply == bytes([SC_REFUSED]), f"over-limit answer {reply!r}"
        else:
            # Nothing else has an answer on tinyproto's wire (0xfe is only
            # sent in place of our handshake, which initiate() already sent).
            assert reply == b"", f"unexpected answer {reply!r} to {error!r}"


DRIVER = TinyProtoDriver(announce=False)
ANNOUNCING = TinyProtoDriver(announce=True)


# --- valid streams ------------------------------------------------------------------


def opening() -> list[Unit]:
    return [(HANDSHAKE, ev(Handshake()))]


def message(payload: bytes, answer: int | None = None, then: bytes | None = None) -> list[Unit]:
    """A peer's message as the driver's policy makes it go; ``answer`` is the
    peer's answer to the announce ``ANNOUNCING`` then makes, if it makes one
    (``None``: for ``DRIVER``, which makes none). With ``then``, the peer's
    next message crosses our announce: its length arrives before the answer."""
    size = len(payload)
    head = _LENGTH.pack(size)
    if size > MAX_MESSAGE:
        return [(head, err(413, False))]
    if refuses(size):
        return [(head, ev(Announce(size)))]
    units: list[Unit] = [(head, ev(Announce(size))), (payload, ev(Message(bytearray(payload))))]
    if announces_after(size) and answer is not None:
        ours = our_size(size)
        result = Accepted(ours) if answer == SC_OK else Refused(ours, answer)
        reply: Unit = (bytes([answer]), ev(result))
        if then is None:
            units.append(reply)
        else:
            # The peer's answer to ours follows our answer to its announce.
            first, *rest = message(then, answer)
            units += [first, reply, *rest]
    return units


def oversize(size: int) -> list[Unit]:
    """An announce over the limit: refused from the length alone."""
    assert size > MAX_MESSAGE
    return [(_LENGTH.pack(size), err(413, False))]


def seeds() -> Iterator[bytes]:
    payloads = [b"", b"a", b"hello", b"x" * 7, b"y" * 10, b"z" * 13, bytes(range(40))]
    units = opening()
    for payload in payloads:
        units += message(payload)
    units += oversize(MAX_MESSAGE + 1) + oversize(0xFFFFFFFF) + message(b"end")
    stream, _ = stream_of(units)
    yield encode_input(stream)
    yield encode_input(stream, eof=False, seed=7)
    yield encode_input(bytes([SC_CONLIMIT]))
    yield encode_input(bytes([SC_GENERIC_ERROR]) * 254)  # how tinyproto 2.x says "full"
    yield encode_input(HANDSHAKE + _LENGTH.pack(5) + b"hel")


def check(data: bytes) -> None:
    check_stream(DRIVER, data)


if __name__ == "__main__":
    exec_target("tinyproto")
