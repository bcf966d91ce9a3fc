"""rawproto.proto.tcpy: the sans-IO tcpy protocol, fed bytes in memory."""

from __future__ import annotations

import datetime
import pickle
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataserve.core.errors import LocalProtocolError, RemoteProtocolError
from dataserve.core.limits import Limits
from rawproto.proto.base import ProtocolConnection
from rawproto.proto.tcpy import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    FrameError,
    Message,
    Reply,
    Request,
    Role,
    error_map,
)

# {"cmd": "add", "x": 1, "y": 2} written out by hand from the msgpack spec.
ADD_REQUEST = (
    b"\x00\x00\x00\x0f"  # 15 bytes follow
    b"\x83"  # fixmap, 3 pairs
    b"\xa3cmd\xa3add"
    b"\xa1x\x01"
    b"\xa1y\x02"
)
# {"success": True, "solution": 3}
ADD_REPLY = b"\x00\x00\x00\x14\x82\xa7success\xc3\xa8solution\x03"


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def events(conn: Connection) -> list[Any]:
    """Every event available now, stopping at NEED_DATA or ConnectionClosed."""
    out: list[Any] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)
        if isinstance(event, ConnectionClosed):
            return out
        if isinstance(event, Request) and conn.role is Role.SERVER:
            # a server answers before the next request is interpreted
            conn.send(Reply({"ok": True}))


def feed_all(data: bytes, chunks: list[int] | None = None, eof: bool = True) -> list[Any]:
    conn = Connection(Role.SERVER)
    out: list[Any] = []
    if chunks is None:
        if data:  # b"" would be EOF
            conn.receive_data(data)
        out += events(conn)
    else:
        pos = 0
        for size in chunks:
            if pos >= len(data):
                break
            conn.receive_data(data[pos : pos + size])
            pos += size
            out += events(conn)
        if pos < len(data):
            conn.receive_data(data[pos:])
            out += events(conn)
    if eof:
        conn.receive_data(None)
        out += events(conn)
    return out


# --- the wire, byte for byte -----------------------------------------------------


def test_request_bytes_match_the_wire_format() -> None:
    client = Connection(Role.CLIENT)
    assert client.send(Request("add", {"x": 1, "y": 2})) == ADD_REQUEST


def test_reply_bytes_match_the_wire_format() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(ADD_REQUEST)
    assert server.next_event() == Request("add", {"x": 1, "y": 2})
    assert server.send(Reply({"success": True, "solution": 3})) == ADD_REPLY
    client = Connection(Role.CLIENT)
    client.receive_data(ADD_REPLY)
    assert client.next_event() == Message({"success": True, "solution": 3})
    assert client.next_event() is NEED_DATA


def test_byte_at_a_time_gives_the_same_events_as_all_at_once() -> None:
    stream = ADD_REQUEST + frame(msgpack.packb({"cmd": "ping"})) + ADD_REQUEST
    whole = feed_all(stream)
    assert whole == feed_all(stream, [1] * len(stream))
    assert whole == [
        Request("add", {"x": 1, "y": 2}),
        Request("ping", {}),
        Request("add", {"x": 1, "y": 2}),
        ConnectionClosed(),
    ]


def test_frames_during_a_request_are_messages_only_when_asked_for() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(ADD_REQUEST + frame(msgpack.packb({"more": 1})) + ADD_REQUEST)
    assert isinstance(server.next_event(), Request)
    assert server.busy
    # the handler converses: the next frame is a message, not a request
    assert server.next_event() == Message({"more": 1})
    sent = server.send(Message({"progress": 50}))
    assert msgpack.unpackb(sent[4:]) == {"progress": 50}
    server.send(Reply({"success": True}))
    assert not server.busy
    assert server.next_event() == Request("add", {"x": 1, "y": 2})


def test_pipelined_requests_wait_for_the_reply() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(ADD_REQUEST * 2)
    assert isinstance(server.next_event(), Request)
    assert server.buffered == len(ADD_REQUEST)
    server.send(Reply({"a": 1}))
    assert isinstance(server.next_event(), Request)


def test_datetimes_travel_as_the_original_encodes_them() -> None:
    when = datetime.datetime(2014, 5, 16, 12, 30, 1, 250)
    server = Connection(Role.SERVER)
    server.receive_data(ADD_REQUEST)
    server.next_event()
    sent = server.send(Reply({"at": when}))
    assert msgpack.unpackb(sent[4:]) == {
        "at": {"__datetime__": True, "as_str": "2014-05-16T12:30:01.000250"}
    }
    client = Connection(Role.CLIENT)
    client.receive_data(sent)
    assert client.next_event() == Message({"at": when})


def test_msgpack_timestamps_decode_to_aware_datetimes() -> None:
    payload = msgpack.packb(
        {"cmd": "at", "t": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)},
        datetime=True,
    )
    events_ = feed_all(frame(payload))
    assert events_[0] == Request(
        "at", {"t": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)}
    )


def test_it_is_a_protocol_connection() -> None:
    conn = Connection(Role.SERVER)
    assert isinstance(conn, ProtocolConnection)
    assert conn.handshake_complete
    assert conn.initiate() == b""
    assert not conn.mid_frame
    conn.receive_data(ADD_REQUEST[:3])
    assert conn.mid_frame
    conn.receive_data(ADD_REQUEST[3:-1])
    assert conn.mid_frame
    conn.receive_data(ADD_REQUEST[-1:])
    assert not conn.mid_frame


# --- requests that are maps but not requests: the connection stays usable --------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"x": 1}, 'the request has no "cmd"'),
        ({"cmd": 5}, '"cmd" must be a non-empty string, not 5'),
        ({"cmd": ""}, '"cmd" must be a non-empty string'),
        ({"cmd": "a", b"k": 1}, "parameter names must be strings"),
    ],
)
def test_a_map_without_a_command_is_a_non_fatal_error(data: Any, reason: str) -> None:
    server = Connection(Role.SERVER)
    server.receive_data(frame(msgpack.packb(data)) + ADD_REQUEST)
    with pytest.raises(FrameError) as info:
        server.next_event()
    assert not info.value.fatal
    assert reason in info.value.message
    answer = server.error_reply(info.value)
    assert msgpack.unpackb(answer[4:]) == {"error": True, "message": info.value.message}
    assert not server.must_close
    assert server.next_event() == Request("add", {"x": 1, "y": 2})


# --- bad input: RemoteProtocolError with a status hint, one reply, then close ---------


BAD_PAYLOADS = {
    "reserved byte 0xc1 (T11)": b"\xc1",
    "trailing bytes (T12)": msgpack.packb({"cmd": "a"}) + b"\x00",
    "array claiming 2**32-1 items (T13)": b"\xdd\xff\xff\xff\xff\x00\x00",
    "0x91 x 100000 (T14)": b"\x91" * 100_000,
    "nesting past max_depth": b"\x91" * 65 + b"\x00",
    "int map key (T15)": b"\x81\x01\x02",
    "map of 70000 keys (T15)": msgpack.packb({f"k{i}": 0 for i in range(70_000)}),
    "unknown ext type (T16)": b"\xd4\x05\x00",
    "malformed timestamp ext (T16)": b"\xd4\xff\x00",
    "raw bytes that are not UTF-8, not a map (T17)": b"\xa2\xff\xfe",
    "pickle stream (T21)": pickle.dumps({"cmd": "add"}, protocol=4),
    "empty message (T1)": b"",
    "not a map": msgpack.packb([1, 2, 3]),
    "a string": msgpack.packb("add"),
    "bad datetime": msgpack.packb({"cmd": "a", "t": {"__datetime__": True, "as_str": "x"}}),
}


# Over the core's budget for structures (a container longer than
# max_container_len): 413, as on every transport; the rest are malformed: 400.
OVER_BUDGET = {"array claiming 2**32-1 items (T13)", "map of 70000 keys (T15)"}


@pytest.mark.parametrize("name", sorted(BAD_PAYLOADS))
def test_bad_payloads_are_fatal_frame_errors(name: str) -> None:
    server = Connection(Role.SERVER)
    server.receive_data(frame(BAD_PAYLOADS[name]) + ADD_REQUEST)
    with pytest.raises(FrameError) as info:
        server.next_event()
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.status == (413 if name in OVER_BUDGET else 400)
    assert info.value.fatal
    assert server.must_close
    # the error sticks: answer it, then close
    with pytest.raises(FrameError):
        server.next_event()
    reply = server.error_reply(info.value)
    assert msgpack.unpackb(reply[4:]) == {"error": True, "message": info.value.message}
    with pytest.raises(LocalProtocolError):
        server.send(Reply({"again": 1}))


@pytest.mark.parametrize("length", [0xFFFFFFFF, 0x47455420, 1025])
def test_an_oversized_length_is_refused_before_its_payload_arrives(length: int) -> None:
    server = Connection(Role.SERVER, Limits(max_frame_size=1024))
    server.receive_data(struct.pack(">I", length))  # no payload at all
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status == 413
    assert str(length) in info.value.message


def test_http_and_tls_to_the_port_read_as_huge_lengths() -> None:
    for data in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
        server = Connection(Role.SERVER, Limits(max_frame_size=4 * 1024 * 1024))
        server.receive_data(data)
        with pytest.raises(RemoteProtocolError) as info:
            server.next_event()
        assert info.value.status == 413


def test_eof_between_messages_is_a_clean_close() -> None:
    assert feed_all(b"") == [ConnectionClosed()]
    assert feed_all(ADD_REQUEST)[-1] == ConnectionClosed()


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x00\x00", "after 2 of a message's 4 length bytes"),
        (b"\x00\x00\x03\xe8" + b"x" * 10, "after 10 of a message's 1000 bytes"),
    ],
)
def test_eof_inside_a_message_is_an_error(data: bytes, text: str) -> None:
    server = Connection(Role.SERVER)
    server.receive_data(data)
    assert server.next_event() is NEED_DATA
    server.receive_data(None)
    assert server.peer_closed
    with pytest.raises(RemoteProtocolError, match=text):
        server.next_event()


def test_local_misuse_raises_local_protocol_errors() -> None:
    server = Connection(Role.SERVER)
    with pytest.raises(LocalProtocolError):
        server.send(Reply({"a": 1}))  # nothing to reply to
    with pytest.raises(LocalProtocolError):
        server.send(Message({"a": 1}))
    with pytest.raises(LocalProtocolError):
        server.send(Request("x"))
    with pytest.raises(LocalProtocolError):
        Reply([1, 2])  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        Request("")
    with pytest.raises(LocalProtocolError):
        Request("a", {"cmd": "b"})
    client = Connection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(Reply({"a": 1}))
    with pytest.raises(LocalProtocolError, match="cannot send"):
        client.send(Message({"a": object()}))


def test_a_client_sees_every_frame_as_a_message() -> None:
    client = Connection(Role.CLIENT)
    client.receive_data(frame(msgpack.packb({"step": 1})) + ADD_REPLY)
    assert client.next_event() == Message({"step": 1})
    assert client.next_event() == Message({"success": True, "solution": 3})
    client.receive_data(b"")
    assert client.next_event() == ConnectionClosed()
    assert client.next_event() is NEED_DATA  # reported once


def test_error_map_uses_the_message() -> None:
    assert error_map(ValueError("boom")) == {"error": True, "message": "boom"}
    assert error_map(KeyError()) == {"error": True, "message": "KeyError"}
    assert Connection(Role.CLIENT).error_reply(FrameError("x")) == b""


def test_an_error_reply_ends_the_exchange_it_answers() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(ADD_REQUEST * 2)
    server.next_event()
    server.error_reply(FrameError("unknown command", fatal=False))
    assert not server.busy
    assert server.next_event() == Request("add", {"x": 1, "y": 2})


# --- fuzzing -----------------------------------------------------------------------

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
requests = st.builds(
    Request,
    st.text(min_size=1, max_size=10),
    st.dictionaries(st.text(max_size=8).filter(lambda s: s != "cmd"), msgpack_values, max_size=5),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests, min_size=1, max_size=5), st.data())
def test_random_splits_of_a_valid_stream_give_the_same_events(
    reqs: list[Request], data: st.DataObject
) -> None:
    client = Connection(Role.CLIENT)
    stream = b"".join(client.send(r) for r in reqs)
    sizes = data.draw(st.lists(st.integers(1, 64), max_size=len(stream)))
    whole = feed_all(stream)
    assert whole == [*reqs, ConnectionClosed()]
    assert feed_all(stream, sizes) == whole


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(1, 16), max_size=20))
def test_random_bytes_give_events_or_a_protocol_error_only(junk: bytes, sizes: list[int]) -> None:
    try:
        feed_all(junk, sizes)
    except FrameError as exc:
        assert exc.status in (400, 413)
        assert exc.message


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_random_payloads_in_valid_frames_never_raise_anything_else(payload: bytes) -> None:
    try:
        feed_all(frame(payload), eof=False)
    except FrameError as exc:
        assert exc.status in (400, 413)  # malformed, or over the budget for structures
