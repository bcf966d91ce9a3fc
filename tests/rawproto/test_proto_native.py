"""rawproto.proto.native fed bytes in memory: events, limits, errors, fuzzing."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataserve.core.errors import LocalProtocolError, RemoteProtocolError
from rawproto.proto.base import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    FrameError,
    ProtocolConnection,
    Role,
)
from rawproto.proto.native import (
    HEADER,
    KIND_AUTH,
    KIND_REPLY,
    PREFACE,
    Error,
    NativeConnection,
    Preface,
    Reply,
    Request,
)


def client() -> NativeConnection:
    conn = NativeConnection(Role.CLIENT)
    conn.initiate()
    return conn


def server(max_frame_size: int = 1 << 30) -> NativeConnection:
    conn = NativeConnection(Role.SERVER, max_frame_size=max_frame_size)
    conn.initiate()
    return conn


def feed(conn: NativeConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return conn.events()


def frame(kind: int, request_id: int, body: bytes = b"", tag: int = 0, res_len: int = 0) -> bytes:
    return HEADER.pack(8 + len(body), kind, tag, res_len, request_id) + body


def test_it_implements_the_engine_interface() -> None:
    assert isinstance(server(), ProtocolConnection)


def test_requests_and_answers_round_trip_both_ways() -> None:
    c, s = client(), server()
    assert feed(s, PREFACE) == [Preface()]
    assert feed(c, PREFACE) == [Preface()]
    requests = [
        Request(1, "/a", 3, b"[1]"),
        Request(2, "/b/{x}", 0),
        Request(9, "/é", 2, b"\x00" * 70_000),
    ]
    data = b"".join(c.send(r) for r in requests)
    assert feed(s, data) == requests
    answers = [Reply(2, 1, b"two"), Error(9, 500, "boom ü"), Reply(1)]  # out of order
    assert feed(c, b"".join(s.send(a) for a in answers)) == answers
    assert s.handshake_complete and not s.mid_frame


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    c, s = client(), server()
    stream = PREFACE + c.send(Request(1, "/x", 3, b"[4,5,6]")) + c.send(Request(2, "/y"))
    events: list[Event] = []
    for i in range(len(stream)):
        events += feed(s, stream[i : i + 1])
    assert events == [Preface(), Request(1, "/x", 3, b"[4,5,6]"), Request(2, "/y")]


def test_mid_frame_tracks_a_partial_frame() -> None:
    s = server()
    assert not s.handshake_complete and s.mid_frame
    feed(s, PREFACE)
    assert not s.mid_frame
    data = client().send(Request(1, "/x", 2, b"abc"))
    feed(s, data[:5])
    assert s.mid_frame
    assert feed(s, data[5:]) == [Request(1, "/x", 2, b"abc")]
    assert not s.mid_frame


def test_oversize_length_is_refused_from_the_header_alone() -> None:
    s = server(max_frame_size=1000)
    feed(s, PREFACE)
    s.receive_data(HEADER.pack(0xFFFFFFFF, 1, 2, 1, 42))  # no payload sent at all
    with pytest.raises(FrameError) as info:
        s.next_event()
    exc = info.value
    assert (exc.status, exc.fatal, exc.request_id) == (413, True, 42)
    assert "4294967295 bytes is over the limit of 1000" in exc.message
    assert len(s._buf) == 0  # nothing buffered
    with pytest.raises(FrameError):  # the connection stays broken
        s.next_event()
    reply = s.error_reply(exc)
    assert feed(client_after_preface(), reply) == [Error(42, 413, exc.message)]


def client_after_preface() -> NativeConnection:
    c = client()
    feed(c, PREFACE)
    return c


def test_exactly_the_limit_is_accepted() -> None:
    s = server(max_frame_size=8 + 2 + 10)
    feed(s, PREFACE)
    assert feed(s, client().send(Request(1, "/x", 2, b"0123456789"))) == [
        Request(1, "/x", 2, b"0123456789")
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET / HTTP/1.1\r\n", "got 47 45 54 20"),
        (b"G", "got 47"),
        (bytes.fromhex("16 03 01 02 00 01 00 01 fc 03 03"), "got 16 03 01 02"),
        (b"\xff", "got ff"),
        (b"\x89RPX", "got 89 52 50 58"),
    ],
)
def test_a_bad_preface_fails_on_its_first_wrong_byte(data: bytes, expected: str) -> None:
    s = server()
    s.receive_data(data)
    with pytest.raises(FrameError) as info:
        s.next_event()
    assert info.value.status == 400 and info.value.fatal
    assert "not the rawproto native protocol" in info.value.message
    assert expected in info.value.message


def test_a_partial_but_correct_preface_waits() -> None:
    s = server()
    s.receive_data(PREFACE[:3])
    assert s.next_event() is NEED_DATA


def test_another_version_is_refused() -> None:
    s = server()
    s.receive_data(PREFACE[:4] + b"\x02\x00")
    with pytest.raises(FrameError, match="version 2; this side speaks 1"):
        s.next_event()


def test_unknown_flags_are_ignored() -> None:
    assert feed(server(), PREFACE[:5] + b"\x80") == [Preface(1, 0x80)]


@pytest.mark.parametrize("kind", [KIND_REPLY, KIND_AUTH, 0x00, 0x7F, 0xFF])
def test_a_kind_the_server_does_not_take_is_skipped_unbuffered(kind: int) -> None:
    s = server()
    feed(s, PREFACE)
    # Not the first frame: AUTH is taken there (see the token tests).
    assert feed(s, client().send(Request(4, "/first"))) == [Request(4, "/first")]
    body = b"x" * 100_000
    s.receive_data(frame(kind, 5, body)[: HEADER.size + 10])
    with pytest.raises(FrameError) as info:
        s.next_event()
    assert (info.value.status, info.value.fatal, info.value.request_id) == (400, False, 5)
    assert "not accepted by the server" in info.value.message
    s.receive_data(body[10:50_000])
    assert s.next_event() is NEED_DATA
    assert len(s._buf) == 0  # discarded as it arrives
    s.receive_data(body[50_000:] + client().send(Request(6, "/next")))
    assert s.next_event() == Request(6, "/next")


def test_a_client_does_not_take_requests() -> None:
    c = client_after_preface()
    c.receive_data(frame(1, 3, b"/x", res_len=2))
    with pytest.raises(FrameError, match="REQUEST frame is not accepted by the client"):
        c.next_event()


def test_request_id_zero_is_a_fatal_error() -> None:
    s = server()
    feed(s, PREFACE)
    s.receive_data(frame(1, 0, b"/x", res_len=2))
    with pytest.raises(FrameError, match="request id 0 is reserved") as info:
        s.next_event()
    assert info.value.fatal


def test_a_length_shorter_than_the_header_is_fatal() -> None:
    s = server()
    feed(s, PREFACE)
    s.receive_data(struct.pack(">IBBHI", 3, 1, 0, 0, 1))
    with pytest.raises(FrameError, match="shorter than the 8 header bytes") as info:
        s.next_event()
    assert info.value.fatal


def test_a_resource_longer_than_its_frame_is_skipped() -> None:
    s = server()
    feed(s, PREFACE)
    s.receive_data(frame(1, 4, b"/x", res_len=50) + client().send(Request(5, "/ok")))
    with pytest.raises(FrameError, match="resource length 50") as info:
        s.next_event()
    assert not info.value.fatal and info.value.request_id == 4
    assert s.next_event() == Request(5, "/ok")


def test_a_resource_that_is_not_utf8_is_an_error_for_that_request() -> None:
    s = server()
    feed(s, PREFACE)
    s.receive_data(frame(1, 4, b"\xff\xfe", res_len=2) + client().send(Request(5, "/ok")))
    with pytest.raises(FrameError, match="not valid UTF-8") as info:
        s.next_event()
    assert not info.value.fatal and info.value.request_id == 4
    assert s.next_event() == Request(5, "/ok")


def test_an_error_frame_without_its_code_is_skipped() -> None:
    c = client_after_preface()
    c.receive_data(frame(3, 4, b"\x01") + server().send(Reply(5)))
    with pytest.raises(FrameError, match="2-byte code"):
        c.next_event()
    assert c.next_event() == Reply(5)


def test_eof_between_frames_is_connection_closed_once() -> None:
    s = server()
    feed(s, PREFACE)
    s.receive_data(None)
    assert s.next_event() == ConnectionClosed()
    assert s.next_event() is NEED_DATA


@pytest.mark.parametrize("cut", [0, 3, 6 + 5, 6 + 12, 6 + 15])
def test_eof_mid_frame_or_preface_is_an_error(cut: int) -> None:
    s = server()
    stream = PREFACE + client().send(Request(1, "/abc", 2, b"xyz"))
    s.receive_data(stream[:cut])
    s.receive_data(None)
    with pytest.raises(FrameError, match="closed in the middle"):
        s.events()


def test_data_after_eof_is_a_local_error() -> None:
    s = server()
    s.receive_data(None)
    with pytest.raises(LocalProtocolError):
        s.receive_data(b"x")


@pytest.mark.parametrize(
    ("conn", "event", "match"),
    [
        (client, Reply(1), "client does not send Reply"),
        (server, Request(1, "/x"), "server does not send Request"),
        (client, Request(0, "/x"), "request id 0"),
        (client, Request(1, "x" * 70_000), "at most 65535"),
        (client, Preface(), "already sent"),
        (client, ConnectionClosed(), "cannot send ConnectionClosed"),
    ],
)
def test_sending_what_the_role_does_not_allow_raises(conn: Any, event: Event, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        conn().send(event)


def test_events_validate_their_fields() -> None:
    for bad in (
        lambda: Request(-1, "/"),
        lambda: Reply(2**32),
        lambda: Reply(1, 256),
        lambda: Error(1, 70_000),
    ):
        with pytest.raises(LocalProtocolError):
            bad()


def test_frames_need_the_preface_sent_first() -> None:
    with pytest.raises(LocalProtocolError, match="preface"):
        NativeConnection(Role.SERVER).send(Reply(1))


def test_error_reply_sends_the_preface_when_not_yet_sent() -> None:
    s = NativeConnection(Role.SERVER)
    reply = s.error_reply(FrameError("full", 503))
    c = client()
    assert feed(c, reply) == [Preface(), Error(0, 503, "full")]
    assert NativeConnection(Role.CLIENT).error_reply(FrameError("x")) == b""


def test_long_error_messages_are_cut() -> None:
    c = client_after_preface()
    (event,) = feed(c, server().send(Error(1, 500, "é" * 5000)))
    assert isinstance(event, Error) and len(event.message.encode()) <= 4096


# --- fuzzing ---------------------------------------------------------------------

requests = st.builds(
    Request,
    request_id=st.integers(1, 2**32 - 1),
    resource=st.text(max_size=30),
    tag=st.integers(0, 255),
    body=st.binary(max_size=300),
)
answers = st.one_of(
    st.builds(
        Reply,
        request_id=st.integers(0, 2**32 - 1),
        tag=st.integers(0, 255),
        body=st.binary(max_size=300),
    ),
    st.builds(
        Error,
        request_id=st.integers(0, 2**32 - 1),
        code=st.integers(0, 65535),
        message=st.text(max_size=40),
    ),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests, max_size=8), st.lists(st.integers(0, 10_000), max_size=12))
def test_random_splits_of_requests_give_the_same_events(
    events: list[Request], cuts: list[int]
) -> None:
    c = client()
    stream = PREFACE + b"".join(c.send(e) for e in events)
    s = server()
    got: list[Event] = []
    for piece in split(stream, cuts):
        got += feed(s, piece)
    assert got == [Preface(), *events]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(answers, max_size=8), st.lists(st.integers(0, 10_000), max_size=12))
def test_random_splits_of_answers_give_the_same_events(events: list[Any], cuts: list[int]) -> None:
    s = server()
    stream = PREFACE + b"".join(s.send(e) for e in events)
    expected = [
        Error(
            e.request_id,
            e.code,
            e.message.encode("utf-8", "replace")[:4096].decode("utf-8", "replace"),
        )
        if isinstance(e, Error)
        else e
        for e in events
    ]
    c = client()
    got: list[Event] = []
    for piece in split(stream, cuts):
        got += feed(c, piece)
    assert got == [Preface(), *expected]


def drain_all(conn: NativeConnection, data: bytes) -> None:
    """Feed ``data`` then EOF; raise only protocol errors, skip past non-fatal ones."""
    conn.receive_data(data)
    conn.receive_data(None)
    for _ in range(len(data) + 2):
        try:
            event = conn.next_event()
        except FrameError as exc:
            if exc.fatal:
                raise
            continue
        if event is NEED_DATA or isinstance(event, ConnectionClosed):
            return


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.booleans(), st.booleans())
def test_random_bytes_give_events_or_a_protocol_error_only(
    data: bytes, as_server: bool, prefaced: bool
) -> None:
    conn = server(max_frame_size=500) if as_server else client_after_preface()
    if as_server and prefaced:
        feed(conn, PREFACE)
    with contextlib.suppress(RemoteProtocolError):  # the only exception allowed
        drain_all(conn, data)
