"""rawproto.proto.tinyproto fed bytes in memory: the exchange, limits, errors, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataserve.core.errors import LocalProtocolError, RemoteProtocolError
from rawproto.proto.base import NEED_DATA, ConnectionClosed, Event, FrameError, ProtocolConnection
from rawproto.proto.tinyproto import (
    MSG_MAX_SIZE,
    SC_CONLIMIT,
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


def ready(max_message_size: int = MSG_MAX_SIZE) -> TinyProtoConnection:
    """A connection whose handshake is done both ways."""
    conn = TinyProtoConnection(max_message_size=max_message_size)
    assert conn.initiate() == b"\xff"
    conn.receive_data(b"\xff")
    assert conn.next_event() == Handshake()
    return conn


def test_it_implements_the_engine_interface() -> None:
    assert isinstance(TinyProtoConnection(), ProtocolConnection)


def test_a_pair_exchanges_messages_both_ways() -> None:
    a, b = TinyProtoConnection(), TinyProtoConnection()
    b.receive_data(a.initiate())
    a.receive_data(b.initiate())
    assert a.events() == [Handshake()] and b.events() == [Handshake()]
    assert a.handshake_complete and b.handshake_complete
    for sender, receiver, data in ((a, b, b"hello"), (b, a, b"x" * 100_000), (a, b, b"")):
        receiver.receive_data(sender.send(Announce(len(data))))
        assert receiver.events() == [Announce(len(data))]
        sender.receive_data(receiver.send(Accept()))
        assert sender.events() == [Accepted(len(data))]
        receiver.receive_data(sender.send(Message(data)))
        (message,) = receiver.events()
        assert message == Message(bytearray(data))
        assert isinstance(message, Message) and type(message.data) is bytearray
    assert not a.mid_frame and not b.mid_frame


def test_byte_exact_exchange() -> None:
    conn = ready()
    conn.receive_data(b"\x00\x00\x01\x00")
    assert conn.next_event() == Announce(256)
    assert conn.send(Accept()) == b"\xff"
    conn.receive_data(bytes(range(256)))
    assert conn.next_event() == Message(bytearray(range(256)))
    assert conn.send(Announce(3)) == b"\x00\x00\x00\x03"
    conn.receive_data(b"\xff")
    assert conn.next_event() == Accepted(3)
    assert conn.send(Message(b"abc")) == b"abc"


def test_an_oversize_announce_is_refused_before_the_payload() -> None:
    conn = ready(max_message_size=1000)
    conn.receive_data(b"\x00\x00\x03\xe9")  # 1001
    with pytest.raises(FrameError) as info:
        conn.next_event()
    exc = info.value
    assert (exc.status, exc.fatal) == (413, False)
    assert "1001 bytes is over the limit of 1000" in exc.message
    assert conn.error_reply(exc) == b"\xfc"
    # The sender does not send the payload after 0xfc: the next length follows.
    conn.receive_data(b"\x00\x00\x00\x02ok")
    assert conn.next_event() == Announce(2)
    conn.send(Accept())
    assert conn.next_event() == Message(bytearray(b"ok"))


def test_an_announce_above_the_protocol_maximum_is_refused() -> None:
    conn = ready()
    conn.receive_data(b"\xff\xff\xff\xff")
    with pytest.raises(FrameError, match="4294967295 bytes"):
        conn.next_event()
    assert len(conn._buf) == 0


def test_refusing_an_announce_in_the_application() -> None:
    conn = ready()
    conn.receive_data(b"\x00\x00\x00\x05")
    assert conn.next_event() == Announce(5)
    assert conn.send(Refuse()) == b"\xfc"
    assert not conn.mid_frame


@pytest.mark.parametrize("code", [0x00, 0x07, 0xF0, 0xFF, 0x100])
def test_a_refusal_code_cannot_begin_a_length(code: int) -> None:
    with pytest.raises(LocalProtocolError, match="from 0xf1 to 0xfe"):
        Refuse(code)


@pytest.mark.parametrize(
    ("answer", "code"), [(b"\xfc", 0xFC), (b"\xfe", 0xFE), (b"\xfd", 0xFD), (b"\xf1", 0xF1)]
)
def test_a_byte_above_0xf0_refuses_our_announce(answer: bytes, code: int) -> None:
    conn = ready()
    conn.send(Announce(10))
    assert conn.mid_frame and conn.awaiting_answer
    conn.receive_data(answer)
    (event,) = conn.events()
    assert event == Refused(10, code)
    assert isinstance(event, Refused) and event.reason
    assert conn.can_announce


def test_the_byte_after_our_announce_is_its_answer() -> None:
    conn = ready()
    conn.send(Announce(1))
    conn.receive_data(b"\xff\x00\x00\x00")
    assert conn.next_event() == Accepted(1)
    conn.send(Message(b"z"))
    assert conn.next_event() is NEED_DATA  # a partial length: 4 bytes needed
    conn.receive_data(b"\x01")
    assert conn.next_event() == Announce(1)


def test_announce_is_not_allowed_while_a_message_comes_in() -> None:
    conn = ready()
    conn.receive_data(b"\x00\x00\x00\x05")
    conn.next_event()
    with pytest.raises(LocalProtocolError, match="cannot announce"):
        conn.send(Announce(1))


@pytest.mark.parametrize(
    ("setup", "event", "match"),
    [
        ("ready", Accept(), "nothing announced"),
        ("ready", Refuse(), "nothing announced"),
        ("ready", Message(b"x"), "once its announce is accepted"),
        ("accepted", Message(b"toolong"), "announced 1 bytes"),
        ("ready", Handshake(), "already sent"),
        ("fresh", Announce(1), "cannot announce"),
        ("ready", ConnectionClosed(), "cannot send ConnectionClosed"),
    ],
)
def test_local_errors(setup: str, event: Event, match: str) -> None:
    conn = TinyProtoConnection() if setup == "fresh" else ready()
    if setup == "accepted":
        conn.send(Announce(1))
        conn.receive_data(b"\xff")
        conn.next_event()
    with pytest.raises(LocalProtocolError, match=match):
        conn.send(event)


def test_events_validate_their_fields() -> None:
    with pytest.raises(LocalProtocolError):
        Announce(MSG_MAX_SIZE + 1)
    with pytest.raises(LocalProtocolError):
        Refuse(0xFF)


@pytest.mark.parametrize(
    ("byte", "status", "match"),
    [
        (b"G", 400, "bad handshake byte 0x47"),
        (b"\x16", 400, "bad handshake byte 0x16"),
        (b"\xfe", 503, "connection limit"),
        (b"\x00", 503, "zero bytes"),
    ],
)
def test_handshake_errors(byte: bytes, status: int, match: str) -> None:
    conn = TinyProtoConnection()
    conn.receive_data(byte)
    with pytest.raises(FrameError, match=match) as info:
        conn.next_event()
    assert info.value.status == status and info.value.fatal


def test_the_connection_limit_answer_replaces_the_handshake() -> None:
    conn = TinyProtoConnection()
    assert conn.send(Refuse(SC_CONLIMIT)) == b"\xfe"
    assert TinyProtoConnection().error_reply(FrameError("full", 503)) == b"\xfe"
    assert ready().error_reply(FrameError("full", 503)) == b""


def test_eof_between_messages_and_mid_message() -> None:
    conn = ready()
    conn.receive_data(None)
    assert conn.next_event() == ConnectionClosed()
    assert conn.next_event() is NEED_DATA
    for partial in (b"\x00\x00", b"\x00\x00\x00\x05"):
        conn = ready()
        conn.receive_data(partial)
        conn.events()
        if conn._recv.value == "decide":
            conn.send(Accept())
        conn.receive_data(None)
        with pytest.raises(FrameError, match="middle of a message"):
            conn.events()
    conn = TinyProtoConnection()
    conn.receive_data(None)
    with pytest.raises(FrameError, match="closed before its handshake"):
        conn.next_event()
    conn = ready()
    conn.send(Announce(1))
    conn.receive_data(None)
    with pytest.raises(FrameError, match="without answering"):
        conn.next_event()


# --- fuzzing ---------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=500), max_size=6), st.lists(st.integers(0, 5000), max_size=10))
def test_random_splits_give_the_same_messages(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"\xff" + b"".join(len(m).to_bytes(4, "big") + m for m in messages)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    conn = TinyProtoConnection()
    conn.initiate()
    got: list[Event] = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        conn.receive_data(stream[a:b])
        while (event := conn.next_event()) is not NEED_DATA:
            got.append(event)
            if isinstance(event, Announce):
                conn.send(Accept())
    expected: list[Event] = [Handshake()]
    for m in messages:
        expected += [Announce(len(m)), Message(bytearray(m))]
    assert got == expected


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_give_events_or_a_protocol_error_only(data: bytes, handshaken: bool) -> None:
    conn = ready(max_message_size=100) if handshaken else TinyProtoConnection()
    conn.receive_data(data)
    conn.receive_data(None)
    try:
        for _ in range(len(data) + 2):
            try:
                event = conn.next_event()
            except FrameError as exc:
                if exc.fatal:
                    raise
                continue
            if event is NEED_DATA or isinstance(event, ConnectionClosed):
                break
            if isinstance(event, Announce):
                conn.send(Accept())
    except RemoteProtocolError:
        pass


def test_both_sides_announcing_at_once_exchange_both_messages() -> None:
    a, b = ready(), ready()
    to_b = a.send(Announce(7))
    to_a = b.send(Announce(15))
    a.receive_data(to_a)  # each sees a length where it waits for an answer
    b.receive_data(to_b)
    assert a.events() == [Announce(15)] and b.events() == [Announce(7)]
    a.receive_data(b.send(Accept()))
    b.receive_data(a.send(Accept()))
    assert a.events() == [Accepted(7)] and b.events() == [Accepted(15)]
    a.receive_data(b.send(Message(b"Echo back: ping")))
    b.receive_data(a.send(Message(b"SRVQUIT")))
    assert a.events() == [Message(bytearray(b"Echo back: ping"))]
    assert b.events() == [Message(bytearray(b"SRVQUIT"))]
    assert a.can_announce and b.can_announce


def test_a_refusal_then_an_announce_is_read_the_same_however_it_is_cut() -> None:
    stream = b"\xfc\x00\x00\x00\x31"  # refused, then the peer announces 49 bytes
    for cuts in ([], [1], [1, 2, 3, 4], [3]):
        conn = ready()
        conn.send(Announce(1000))
        got: list[Event] = []
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            conn.receive_data(stream[a:b])
            got += conn.events()
        assert got == [Refused(1000, SC_REFUSED), Announce(0x31)], cuts


def test_a_crossing_announce_is_read_the_same_however_it_is_cut() -> None:
    # The peer's length (its first byte 0x00..0xf0) where our answer was due,
    # then its answer to ours: the same events for every split.
    stream = b"\x00\x00\x00\x31\xff"
    for cuts in ([], [1], [1, 2, 3, 4], [4]):
        conn = ready()
        conn.send(Announce(7))
        got: list[Event] = []
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            conn.receive_data(stream[a:b])
            while (event := conn.next_event()) is not NEED_DATA:
                got.append(event)
                if isinstance(event, Announce):
                    conn.send(Accept())
        assert got == [Announce(0x31), Accepted(7)], cuts


def test_the_originals_generic_refusal_begins_a_length_where_an_answer_is_due() -> None:
    # An original receiver sends 0x00 only for lengths above MSG_MAX_SIZE,
    # which no sender announces; where an answer is due it begins a length.
    conn = ready()
    conn.send(Announce(10))
    conn.receive_data(b"\x00")
    assert conn.events() == []
    assert conn.awaiting_answer
