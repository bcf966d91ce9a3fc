"""The native framing's token authentication, fed bytes in memory."""

from __future__ import annotations

import pytest

from dataserve.core.errors import LocalProtocolError
from rawproto.proto.base import NEED_DATA, Event, FrameError, Role
from rawproto.proto.native import (
    HEADER,
    KIND_AUTH,
    KIND_REQUEST,
    PRE_AUTH_MAX_FRAME_SIZE,
    PREFACE,
    Auth,
    Error,
    NativeConnection,
    Preface,
    Request,
)

TOKEN = b"s3cret"


def client() -> NativeConnection:
    conn = NativeConnection(Role.CLIENT)
    conn.initiate()
    return conn


def guarded() -> NativeConnection:
    """A server that requires ``TOKEN``, its preface sent and the client's received."""
    conn = NativeConnection(Role.SERVER, token=TOKEN)
    conn.initiate()
    conn.receive_data(PREFACE)
    assert conn.events() == [Preface()]
    return conn


def header(length: int, kind: int, request_id: int = 0, res_len: int = 0) -> bytes:
    return HEADER.pack(length, kind, 0, res_len, request_id)


def refused(conn: NativeConnection, data: bytes) -> FrameError:
    conn.receive_data(data)
    with pytest.raises(FrameError) as info:
        conn.next_event()
    assert info.value.fatal
    with pytest.raises(FrameError) as again:  # the connection is over
        conn.next_event()
    assert again.value is info.value
    return info.value


def test_the_right_token_lets_requests_through() -> None:
    server, c = guarded(), client()
    assert not server.handshake_complete  # the handshake deadline covers the token
    stream = c.send(Auth(TOKEN)) + c.send(Request(1, "/x", 1, b"hi"))
    assert server.awaiting_auth
    got: list[Event] = []
    for byte in stream:  # one byte at a time: the same events
        server.receive_data(bytes([byte]))
        got += server.events()
    assert got == [Auth(TOKEN), Request(1, "/x", 1, b"hi")]
    assert server.handshake_complete and not server.awaiting_auth


def test_a_wrong_token_is_401_and_fatal() -> None:
    server = guarded()
    exc = refused(server, client().send(Auth(b"guess")))
    assert (exc.status, exc.request_id, exc.message) == (401, 0, "wrong token")
    reply = server.error_reply(exc)
    answer = client()
    answer.receive_data(PREFACE + reply)
    assert answer.events() == [Preface(), Error(0, 401, "wrong token")]


def test_a_request_before_the_token_is_401_from_its_header_alone() -> None:
    server = guarded()
    # A 1 GiB request's header: decided without reading (or waiting for) the rest.
    exc = refused(server, header(1 << 30, KIND_REQUEST, request_id=1, res_len=2))
    assert exc.status == 401 and exc.request_id == 0
    assert "requires a token" in exc.message
    assert len(server._buf) == 0


def test_before_the_token_a_frame_is_at_most_16_kib() -> None:
    server = guarded()
    exc = refused(server, header(PRE_AUTH_MAX_FRAME_SIZE + 1, KIND_AUTH))
    assert exc.status == 413 and "before authentication" in exc.message
    assert len(server._buf) == 0
    # Exactly the limit is a token like any other.
    token = b"t" * (PRE_AUTH_MAX_FRAME_SIZE - 8)
    server = NativeConnection(Role.SERVER, token=token)
    server.receive_data(PREFACE + client().send(Auth(token)))
    assert server.events() == [Preface(), Auth(token)]


@pytest.mark.parametrize(
    "frame",
    [
        header(8 + 2, KIND_AUTH, request_id=7) + b"ab",  # an AUTH frame has request id 0
        header(8 + 2, KIND_AUTH, res_len=1) + b"ab",  # and no resource
        header(4, KIND_AUTH),  # nor a length shorter than its header
    ],
)
def test_a_malformed_auth_frame_is_400_and_fatal(frame: bytes) -> None:
    assert refused(guarded(), frame).status == 400


def test_a_server_without_a_token_ignores_an_auth_first_frame() -> None:
    server = NativeConnection(Role.SERVER)
    server.initiate()
    c = client()
    server.receive_data(PREFACE + c.send(Auth(b"anything")) + c.send(Request(1, "/x")))
    assert server.events() == [Preface(), Auth(b"anything"), Request(1, "/x")]


def test_auth_after_the_first_frame_is_skipped_with_400() -> None:
    server, c = guarded(), client()
    server.receive_data(c.send(Auth(TOKEN)) + c.send(Auth(TOKEN)) + c.send(Request(2, "/y")))
    assert server.next_event() == Auth(TOKEN)
    with pytest.raises(FrameError) as info:
        server.next_event()
    assert (info.value.status, info.value.fatal) == (400, False)
    assert server.next_event() == Request(2, "/y")
    assert server.next_event() is NEED_DATA


def test_only_a_client_sends_auth_and_only_a_server_has_a_token() -> None:
    server = NativeConnection(Role.SERVER)
    server.initiate()
    with pytest.raises(LocalProtocolError):
        server.send(Auth(TOKEN))
    with pytest.raises(LocalProtocolError, match="only a server checks a token"):
        NativeConnection(Role.CLIENT, token=TOKEN)
    with pytest.raises(LocalProtocolError, match="a token is at most"):
        client().send(Auth(b"x" * PRE_AUTH_MAX_FRAME_SIZE))


def test_the_token_stays_out_of_reprs() -> None:
    assert "s3cret" not in repr(Auth(TOKEN))
