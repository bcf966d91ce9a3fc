"""rawproto.proto.native_reader: a payload announced, and supplied as one buffer.

Fed bytes in memory, as every protocol test: the frame's header (and a
request's resource) go in with ``receive_data``; the payload either follows
the same way or is handed over whole with ``receive_payload``, and both give
the same events.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataserve.core.errors import LocalProtocolError
from rawproto.proto.base import NEED_DATA, Event, FrameError, Role
from rawproto.proto.native import (
    HEADER,
    PREFACE,
    Auth,
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


def server(token: bytes | None = None) -> NativeConnection:
    conn = NativeConnection(Role.SERVER, token=token)
    conn.initiate()
    conn.receive_data(PREFACE)
    assert conn.next_event() == Preface()
    return conn


def answering_client() -> NativeConnection:
    conn = client()
    conn.receive_data(PREFACE)
    assert conn.next_event() == Preface()
    return conn


def request_bytes(request_id: int, resource: str, body: bytes, tag: int = 2) -> bytes:
    return client().send(Request(request_id, resource, tag, body))


def test_a_request_announces_its_payload_once_header_and_resource_are_in() -> None:
    s = server()
    data = request_bytes(7, "/echo", bytes(range(200)))
    head = HEADER.size + len("/echo")
    s.receive_data(data[: head - 1])
    assert s.next_event() is NEED_DATA and s.payload_size == 0  # the resource is not whole
    s.receive_data(data[head - 1 : head + 30])
    assert s.next_event() is NEED_DATA
    assert (s.payload_size, s.payload_buffered) == (200, 30)
    payload = bytes(range(200))  # what the caller read on its own
    prefix = bytearray(200)
    assert s.payload_prefix(memoryview(prefix)) == 30
    assert prefix[:30] == payload[:30]
    s.receive_payload(payload)
    assert s.payload_size == 0
    event = s.next_event()
    assert event == Request(7, "/echo", 2, payload)
    assert isinstance(event, Request) and event.body is payload  # the very object: no copy
    assert s.next_event() is NEED_DATA and not s.mid_frame


def test_the_payload_can_be_supplied_with_nothing_of_it_buffered() -> None:
    s = server()
    s.receive_data(request_bytes(1, "/x", b"abc")[: HEADER.size + 2])
    assert s.next_event() is NEED_DATA
    assert (s.payload_size, s.payload_buffered) == (3, 0)
    assert s.mid_frame  # the engine's frame deadline still applies
    s.receive_payload(b"abc")
    assert s.next_event() == Request(1, "/x", 2, b"abc")


def test_the_stream_goes_on_after_a_supplied_payload() -> None:
    s = server()
    first, second = request_bytes(1, "/a", b"x" * 50), request_bytes(2, "/b", b"yz")
    s.receive_data(first[: HEADER.size + 2 + 10])
    assert s.next_event() is NEED_DATA
    s.receive_payload(b"x" * 50)
    s.receive_data(second)
    assert s.events() == [Request(1, "/a", 2, b"x" * 50), Request(2, "/b", 2, b"yz")]


def test_a_reply_announces_its_payload_to_the_client() -> None:
    c = answering_client()
    reply = server().send(Reply(9, 2, b"0123456789"))
    c.receive_data(reply[: HEADER.size + 4])
    assert c.next_event() is NEED_DATA
    assert (c.payload_size, c.payload_buffered) == (10, 4)
    body = b"0123456789"
    c.receive_payload(body)
    event = c.next_event()
    assert event == Reply(9, 2, body) and isinstance(event, Reply) and event.body is body


def test_a_payload_the_caller_took_itself_gives_an_empty_body() -> None:
    c = answering_client()
    c.receive_data(server().send(Reply(3, 2, b"x" * 100))[: HEADER.size])
    assert c.next_event() is NEED_DATA and c.payload_size == 100
    c.receive_payload(None)  # written to a file, say
    assert c.next_event() == Reply(3, 2, b"")


def test_frames_without_a_payload_announce_none() -> None:
    s = server(token=b"t")
    s.receive_data(client().send(Auth(b"t"))[:-1])
    assert s.next_event() is NEED_DATA and s.payload_size == 0  # AUTH: taken whole
    s.receive_data(b"t")
    assert s.next_event() == Auth(b"t")
    s.receive_data(request_bytes(1, "/none", b"", tag=0))
    assert s.next_event() == Request(1, "/none", 0, b"") and s.payload_size == 0
    c = answering_client()
    c.receive_data(server().send(Error(2, 404, "not handled"))[:-3])
    assert c.next_event() is NEED_DATA and c.payload_size == 0  # ERROR: taken whole
    c.receive_data(b"led")
    assert c.next_event() == Error(2, 404, "not handled")


def test_a_skipped_frame_announces_no_payload() -> None:
    s = server()
    s.receive_data(HEADER.pack(8 + 5000, 0x02, 2, 0, 4))  # a REPLY sent to a server
    with pytest.raises(FrameError, match="not accepted") as info:
        s.next_event()
    assert not info.value.fatal and s.payload_size == 0
    s.receive_data(bytes(5000) + request_bytes(5, "/ok", b"!"))
    assert s.events() == [Request(5, "/ok", 2, b"!")]
    assert len(s._buf) == 0


def test_a_resource_that_is_not_utf8_skips_the_payload_unbuffered() -> None:
    s = server()
    s.receive_data(HEADER.pack(8 + 2 + 100_000, 0x01, 2, 2, 4) + b"\xff\xfe")
    with pytest.raises(FrameError, match="not valid UTF-8") as info:
        s.next_event()
    assert not info.value.fatal and s.payload_size == 0
    s.receive_data(bytes(60_000))
    assert s.next_event() is NEED_DATA and len(s._buf) == 0  # discarded as it arrives
    s.receive_data(bytes(40_000) + request_bytes(5, "/ok", b"!"))
    assert s.events() == [Request(5, "/ok", 2, b"!")]


def test_supplying_a_payload_wrongly_is_a_local_error() -> None:
    s = server()
    with pytest.raises(LocalProtocolError, match="no payload is pending"):
        s.receive_payload(b"x")
    s.receive_data(request_bytes(1, "/x", b"abc")[: HEADER.size + 2])
    s.next_event()
    with pytest.raises(LocalProtocolError, match="3 bytes, not 2"):
        s.receive_payload(b"ab")
    s.receive_payload(b"abc")  # the protocol is unharmed by the refused call
    assert s.next_event() == Request(1, "/x", 2, b"abc")


def test_eof_while_a_payload_is_due_is_an_error() -> None:
    s = server()
    s.receive_data(request_bytes(1, "/x", b"abcdef")[: HEADER.size + 4])
    s.next_event()
    s.receive_data(None)
    with pytest.raises(FrameError, match="closed in the middle of a frame"):
        s.next_event()


# --- supplied or fed: the same events ---------------------------------------------------

payloads = st.binary(min_size=1, max_size=400)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(1, 2**32 - 1), st.text(max_size=12), payloads), max_size=6),
    st.lists(st.booleans(), max_size=6),
    st.integers(1, 50),
)
def test_supplying_payloads_or_feeding_them_gives_the_same_events(
    frames: list[tuple[int, str, bytes]], supply: list[bool], chunk: int
) -> None:
    """Whatever the read sizes, a caller that supplies some payloads whole (as the
    engine does for large ones) sees what feeding every byte shows."""
    requests = [Request(rid, "/" + res, 2, body) for rid, res, body in frames]
    stream = b"".join(request_bytes(r.request_id, r.resource, r.body) for r in requests)
    s = server()
    got: list[Event] = []
    at, which = 0, 0
    while at < len(stream) or s.payload_size:
        if s.payload_size and which < len(supply) and supply[which]:
            # The caller reads the rest of this payload itself, into one buffer.
            size, buffered = s.payload_size, s.payload_buffered
            whole = bytearray(size)
            assert s.payload_prefix(memoryview(whole)) == buffered
            rest = size - buffered
            whole[buffered:] = stream[at : at + rest]
            at += rest
            s.receive_payload(bytes(whole))
        elif at < len(stream):
            s.receive_data(stream[at : at + chunk])
            at += chunk
        else:
            break
        before = s.payload_size
        got += s.events()
        if s.payload_size and not before:
            which += 1
    assert got == requests
