"""rawproto.proto.native_header: the preface and each frame header, decided alone."""

from __future__ import annotations

import pytest

from rawproto.proto.base import FrameError, Role
from rawproto.proto.native_events import (
    HEAD_REST,
    KIND_AUTH,
    KIND_ERROR,
    KIND_REPLY,
    KIND_REQUEST,
    MAGIC,
    PRE_AUTH_MAX_FRAME_SIZE,
    PREFACE,
    VERSION,
    Auth,
    Preface,
)
from rawproto.proto.native_header import HeaderCheck, read_preface


def test_the_preface_is_checked_as_it_arrives() -> None:
    assert read_preface(b"") is None
    assert read_preface(PREFACE[:3]) is None
    assert read_preface(PREFACE) == Preface(VERSION, PREFACE[5])
    with pytest.raises(FrameError, match="not the rawproto native protocol") as info:
        read_preface(b"G")  # "GET ": refused on its first byte
    assert info.value.status == 400 and info.value.fatal
    with pytest.raises(FrameError, match="unsupported native protocol version 99"):
        read_preface(MAGIC + bytes([99]) + PREFACE[5:])


def test_a_server_takes_requests_and_a_client_replies_and_errors() -> None:
    server = HeaderCheck(Role.SERVER, 1000, None)
    assert server.frame(HEAD_REST + 10, KIND_REQUEST, 3, 1) == 10
    client = HeaderCheck(Role.CLIENT, 1000, None)
    assert client.frame(HEAD_REST + 5, KIND_REPLY, 0, 1) == 5
    assert client.frame(HEAD_REST + 2, KIND_ERROR, 0, 0) == 2
    for check, kind in ((server, KIND_REPLY), (client, KIND_REQUEST), (client, 0x7F)):
        with pytest.raises(FrameError, match="not accepted|unknown frame kind") as info:
            check.frame(HEAD_REST + 4, kind, 0, 9)
        assert not info.value.fatal and info.value.request_id == 9  # skipped, not fatal


@pytest.mark.parametrize(
    ("length", "kind", "res_len", "request_id", "status", "fatal", "match"),
    [
        (1001, KIND_REQUEST, 0, 1, 413, True, "over the limit of 1000"),
        (HEAD_REST - 1, KIND_REQUEST, 0, 1, 400, True, "shorter than"),
        (HEAD_REST + 4, KIND_REQUEST, 0, 0, 400, True, "request id 0 is reserved"),
        (HEAD_REST + 4, KIND_REQUEST, 5, 1, 400, False, "resource length 5 does not fit"),
    ],
)
def test_a_refused_header(
    length: int, kind: int, res_len: int, request_id: int, status: int, fatal: bool, match: str
) -> None:
    check = HeaderCheck(Role.SERVER, 1000, None)
    with pytest.raises(FrameError, match=match) as info:
        check.frame(length, kind, res_len, request_id)
    assert (info.value.status, info.value.fatal) == (status, fatal)


def test_an_error_frame_needs_its_code_and_a_reply_no_resource() -> None:
    check = HeaderCheck(Role.CLIENT, 1000, None)
    with pytest.raises(FrameError, match="2-byte code"):
        check.frame(HEAD_REST + 1, KIND_ERROR, 0, 1)
    with pytest.raises(FrameError, match="resource length 1"):
        check.frame(HEAD_REST + 4, KIND_REPLY, 1, 1)


def test_a_token_comes_first_in_an_auth_frame() -> None:
    check = HeaderCheck(Role.SERVER, 1000, b"s3cret")
    assert not check.authenticated
    assert check.frame(HEAD_REST + 6, KIND_AUTH, 0, 0) == 6
    with pytest.raises(FrameError, match="wrong token") as info:
        HeaderCheck(Role.SERVER, 1000, b"s3cret").token(b"guess!")
    assert info.value.status == 401
    assert check.token(b"s3cret") == Auth(b"s3cret") and check.authenticated
    with pytest.raises(FrameError, match="AUTH frame is not accepted by the server"):
        check.frame(HEAD_REST + 6, KIND_AUTH, 0, 0)  # only first


def test_without_the_token_first_nothing_is_read() -> None:
    check = HeaderCheck(Role.SERVER, 1000, b"s3cret")
    with pytest.raises(FrameError, match="requires a token") as info:
        check.frame(HEAD_REST + 4, KIND_REQUEST, 0, 1)
    assert info.value.status == 401 and info.value.fatal


@pytest.mark.parametrize(
    ("length", "res_len", "request_id", "status"),
    [
        (PRE_AUTH_MAX_FRAME_SIZE + 1, 0, 0, 413),
        (HEAD_REST + 4, 1, 0, 400),
        (HEAD_REST + 4, 0, 7, 400),
    ],
)
def test_a_bad_auth_frame_is_fatal(length: int, res_len: int, request_id: int, status: int) -> None:
    check = HeaderCheck(Role.SERVER, 1 << 20, b"s3cret")
    with pytest.raises(FrameError) as info:
        check.frame(length, KIND_AUTH, res_len, request_id)
    assert (info.value.status, info.value.fatal) == (status, True)


def test_a_server_without_a_token_takes_an_auth_first_frame_as_any_token() -> None:
    check = HeaderCheck(Role.SERVER, 1000, None)
    assert check.authenticated
    assert check.frame(HEAD_REST + 3, KIND_AUTH, 0, 0) == 3
    assert check.token(b"any") == Auth(b"any")
