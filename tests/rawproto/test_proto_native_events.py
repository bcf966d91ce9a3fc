"""rawproto.proto.native_events: the native framing's constants and events."""

from __future__ import annotations

import dataclasses

import pytest

from dataserve.core.errors import LocalProtocolError
from rawproto.proto.native_events import (
    HEAD_REST,
    HEADER,
    KIND_AUTH,
    KIND_ERROR,
    KIND_NAMES,
    KIND_REPLY,
    KIND_REQUEST,
    MAGIC,
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


def test_the_constants_of_the_wire_format() -> None:
    assert MAGIC + bytes([VERSION, 0]) == PREFACE and len(PREFACE) == 6
    assert HEADER.size == 12 and HEAD_REST == 8  # length, then kind, tag, res_len, id
    assert KIND_NAMES == {
        KIND_REQUEST: "REQUEST",
        KIND_REPLY: "REPLY",
        KIND_ERROR: "ERROR",
        KIND_AUTH: "AUTH",
    }
    assert PRE_AUTH_MAX_FRAME_SIZE < 1 << 20


def test_events_are_frozen_values() -> None:
    r = Request(1, "/x", 2, b"body")
    assert r == Request(1, "/x", 2, b"body") and hash(r) == hash(Request(1, "/x", 2, b"body"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.resource = "/y"  # type: ignore[misc]
    assert Preface() == Preface(VERSION, 0)


@pytest.mark.parametrize("request_id", [-1, 1 << 32])
def test_request_ids_are_32_bits(request_id: int) -> None:
    with pytest.raises(LocalProtocolError, match="a request id is 0..4294967295"):
        Request(request_id, "/x")
    with pytest.raises(LocalProtocolError):
        Reply(request_id)
    with pytest.raises(LocalProtocolError):
        Error(request_id, 500)


@pytest.mark.parametrize("tag", [-1, 256])
def test_tags_are_one_byte(tag: int) -> None:
    with pytest.raises(LocalProtocolError, match="a media tag is one byte"):
        Request(1, "/x", tag)
    with pytest.raises(LocalProtocolError, match="a media tag is one byte"):
        Reply(1, tag)


def test_error_codes_are_16_bits_and_0_is_the_connection() -> None:
    assert Error(0, 400, "bad frame").request_id == 0
    with pytest.raises(LocalProtocolError, match="an error code is 0..65535"):
        Error(1, 70000)


def test_an_auth_event_keeps_its_token_out_of_repr() -> None:
    auth = Auth(b"s3cret-token")
    assert "s3cret" not in repr(auth) and repr(auth) == "Auth(token=<12 bytes>)"
    assert auth.token == b"s3cret-token"


def test_trusted_constructors_make_equal_events_without_checking() -> None:
    assert trusted_request(7, "/r", 3, b"x") == Request(7, "/r", 3, b"x")
    assert trusted_reply(7, 3, b"y") == Reply(7, 3, b"y")
    unchecked = trusted_reply(1 << 40, 0, b"")  # the caller vouches for its fields
    assert unchecked.request_id == 1 << 40
    with pytest.raises(dataclasses.FrozenInstanceError):
        unchecked.tag = 1  # type: ignore[misc]
