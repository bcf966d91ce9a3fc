"""The request and response dicts without a server: parsing and validation."""

from __future__ import annotations

from typing import Any

import pytest

from dataserve.callback.messages import (
    InvalidResponse,
    RequestHeaders,
    build_reply,
    check_address,
    parse_query,
    request_headers,
)

from .conftest import ok


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("foo=bar&baz", {"foo": "bar", "baz": None}),  # the seed's example
        ("", {}),
        ("a=", {"a": ""}),
        ("a", {"a": None}),
        ("=v", {"": "v"}),
        ("a=1&a=2&a=3", {"a": "3"}),  # a repeated name keeps its last value
        ("a=1&b&a", {"a": None, "b": None}),
        ("a&&b&", {"a": None, "b": None}),  # empty fields are skipped
        ("x=%20y%20", {"x": " y "}),
        ("x=a+b", {"x": "a b"}),
        ("x=a%2Bb", {"x": "a+b"}),
        ("na%20me=v", {"na me": "v"}),
        ("x=1=2", {"x": "1=2"}),  # split at the first '='
        ("x=a;y=b", {"x": "a;y=b"}),  # ';' is not a separator
        ("x=%C3%A9", {"x": "é"}),  # UTF-8
        ("x=%FF", {"x": "\ufffd"}),  # invalid UTF-8: replacement character
        ("x=%zz&y=%4", {"x": "%zz", "y": "%4"}),  # malformed escapes stay as they are
    ],
)
def test_parse_query(query: str, expected: dict[str, str | None]) -> None:
    assert parse_query(query) == expected


def test_request_headers_are_canonical_and_case_insensitive() -> None:
    headers = request_headers(
        [
            (b"content-type", b"application/x-xmlrpc-data"),
            (b"x-many", b"1"),
            (b"x-many", b"2"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"x-latin", b"caf\xe9"),
        ]
    )
    assert isinstance(headers, dict)
    assert dict(headers) == {
        "Content-Type": "application/x-xmlrpc-data",
        "X-Many": "1, 2",
        "Cookie": "a=1; b=2",
        "X-Latin": "café",
    }
    assert headers["content-type"] == headers["CONTENT-TYPE"] == headers["Content-Type"]
    assert "content-type" in headers and "X-MANY" in headers
    assert "x-absent" not in headers
    assert 1 not in headers  # type: ignore[comparison-overlap]
    assert headers.get("x-many") == "1, 2"
    assert headers.get("x-absent") is None
    assert headers.get("x-absent", "default") == "default"
    with pytest.raises(KeyError, match="x-absent"):
        headers["x-absent"]


def test_an_empty_request_headers_is_falsy() -> None:
    assert not RequestHeaders()


def test_build_reply_of_a_valid_response() -> None:
    reply = build_reply(ok("héllo", **{"Content-Type": "text/plain; charset=utf-8"}))
    assert reply.status == 200
    assert reply.body == "héllo".encode()
    assert reply.headers == [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"6"),
    ]


@pytest.mark.parametrize(
    ("changes", "status", "body", "headers"),
    [
        ({"message": b"\x00\xff"}, 200, b"\x00\xff", [(b"content-length", b"2")]),
        ({"message": bytearray(b"ab")}, 200, b"ab", [(b"content-length", b"2")]),
        ({"message": None}, 200, b"", [(b"content-length", b"0")]),
        ({"statusmsg": "Fine Thanks"}, 200, b"ok", [(b"content-length", b"2")]),
        ({"statusmsg": None}, 200, b"ok", [(b"content-length", b"2")]),
        ({"statuscode": 599}, 599, b"ok", [(b"content-length", b"2")]),
        ({"statuscode": 204, "message": ""}, 204, b"", []),
        ({"statuscode": 304, "message": b""}, 304, b"", []),
        ({"headers": {"Content-Length": "2"}}, 200, b"ok", [(b"content-length", b"2")]),
        (
            {"version": "1.0"},
            200,
            b"ok",
            [(b"content-length", b"2"), (b"connection", b"close")],
        ),
        (
            {"version": "0.9"},
            200,
            b"ok",
            [(b"content-length", b"2"), (b"connection", b"close")],
        ),
        (
            # An HTTP/1.0 answer closes its connection, whatever the callback says.
            {"version": "1.0", "headers": {"Connection": "keep-alive"}},
            200,
            b"ok",
            [(b"content-length", b"2"), (b"connection", b"close")],
        ),
        (
            {"version": "1.1", "headers": {"Connection": "close"}},
            200,
            b"ok",
            [(b"connection", b"close"), (b"content-length", b"2")],
        ),
    ],
)
def test_build_reply_accepts(
    changes: dict[str, Any], status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    reply = build_reply({**ok(), **changes})
    assert (reply.status, reply.body, reply.headers) == (status, body, headers)


@pytest.mark.parametrize(
    ("changes", "reason", "version"),
    [
        ({}, None, "1.1"),  # the server writes the standard phrase
        ({"statusmsg": None}, None, "1.1"),
        ({"statusmsg": "I am a teapot", "statuscode": 418}, b"I am a teapot", "1.1"),
        ({"statusmsg": ""}, b"", "1.1"),
        ({"statusmsg": "Grüße"}, "Grüße".encode("latin-1"), "1.1"),
        ({"statusmsg": "✓"}, "✓".encode(), "1.1"),
        ({"version": "1.0"}, b"OK", "1.0"),
        ({"version": "1.0", "statuscode": 299}, b"", "1.0"),
        ({"version": "0.9", "statusmsg": "Old"}, b"Old", "1.0"),
    ],
)
def test_build_reply_status_line(
    changes: dict[str, Any], reason: bytes | None, version: str
) -> None:
    reply = build_reply({**ok(), **changes})
    assert (reply.reason, reply.http_version) == (reason, version)


def test_build_reply_for_head_keeps_the_announced_length_and_drops_the_body() -> None:
    reply = build_reply(ok("", **{"Content-Length": "1234"}), head=True)
    assert reply.headers == [(b"content-length", b"1234")] and reply.body == b""
    reply = build_reply(ok("four"), head=True)
    assert reply.headers == [(b"content-length", b"4")] and reply.body == b""


def _without(key: str) -> dict[str, Any]:
    response = ok()
    del response[key]
    return response


# (response, what the error message must say)
BAD_RESPONSES: list[tuple[Any, str]] = [
    (None, "the callback returned NoneType, not a response dict"),
    ("ok", "the callback returned str, not a response dict"),
    (_without("version"), "the response dict has no 'version' key"),
    (_without("statuscode"), "the response dict has no 'statuscode' key"),
    (_without("headers"), "the response dict has no 'headers' key"),
    (_without("message"), "the response dict has no 'message' key"),
    ({**ok(), "status": 200}, "unknown key 'status'"),
    ({**ok(), "version": "2"}, "version must be '0.9', '1.0' or '1.1', not '2'"),
    ({**ok(), "version": 1.1}, "version must be '0.9', '1.0' or '1.1', not 1.1"),
    ({**ok(), "statuscode": "200"}, "statuscode must be an int, not str"),
    ({**ok(), "statuscode": True}, "statuscode must be an int, not bool"),
    ({**ok(), "statuscode": 99}, "statuscode 99 is outside 100..599"),
    ({**ok(), "statuscode": 600}, "statuscode 600 is outside 100..599"),
    ({**ok(), "statuscode": 100}, "statuscode 100 is informational (1xx)"),
    ({**ok(), "statusmsg": 5}, "statusmsg must be a str, not int"),
    ({**ok(), "statusmsg": "OK\nX-Evil: 1"}, "statusmsg 'OK\\nX-Evil: 1' contains a line break"),
    ({**ok(), "statusmsg": "OK\r"}, "contains a line break"),
    ({**ok(), "headers": [("X", "1")]}, "headers must be a dict, not list"),
    ({**ok(), "headers": {1: "x"}}, "header name 1 must be a str, not int"),
    ({**ok(), "headers": {"X-A\r\nX-B": "1"}}, "header name 'X-A\\r\\nX-B' is not a valid"),
    ({**ok(), "headers": {"X A": "1"}}, "header name 'X A' is not a valid field name"),
    ({**ok(), "headers": {"X:A": "1"}}, "header name 'X:A' is not a valid field name"),
    ({**ok(), "headers": {"": "1"}}, "header name '' is not a valid field name"),
    ({**ok(), "headers": {"X-A": 1}}, "header 'X-A' value must be a str, not int"),
    ({**ok(), "headers": {"X-A": "1\r\nX-B: 2"}}, "header 'X-A' value '1\\r\\nX-B: 2' contains"),
    ({**ok(), "headers": {"X-A": "a\nb"}}, "contains a line break or control character"),
    ({**ok(), "headers": {"X-A": "a\x00b"}}, "contains a line break or control character"),
    ({**ok(), "headers": {"X-A": "€"}}, "header 'X-A' value '€' has characters outside Latin-1"),
    ({**ok(), "headers": {"Content-Length": "3"}}, "Content-Length header says 3 bytes"),
    ({**ok(), "headers": {"Content-Length": "-1"}}, "Content-Length header '-1' is not a number"),
    ({**ok(), "headers": {"Transfer-Encoding": "chunked"}}, "Transfer-Encoding header is the"),
    ({**ok(), "message": 42}, "message must be a str or bytes, not int"),
    ({**ok(), "statuscode": 204, "message": "x"}, "a 204 response has no body"),
]


@pytest.mark.parametrize(("response", "problem"), BAD_RESPONSES)
def test_build_reply_names_the_problem(response: Any, problem: str) -> None:
    with pytest.raises(InvalidResponse) as info:
        build_reply(response)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("address", "error", "message"),
    [
        (["127.0.0.1", 8080], TypeError, "addresstuple must be a (host, port) tuple, not list"),
        ("127.0.0.1:8080", TypeError, "not str"),
        (("127.0.0.1",), ValueError, "must be (host, port), not 1 items"),
        (("127.0.0.1", 80, 0), ValueError, "not 3 items"),
        ((b"127.0.0.1", 8080), TypeError, "the host must be a str, not bytes"),
        (("", 8080), ValueError, "the host is empty"),
        (("127.0.0.1", "8080"), TypeError, "the port must be an int, not str"),
        (("127.0.0.1", True), TypeError, "the port must be an int, not bool"),
        (("127.0.0.1", 0), ValueError, "the port must be in 1..65535, not 0"),
        (("127.0.0.1", 65536), ValueError, "the port must be in 1..65535, not 65536"),
        (("127.0.0.1", -1), ValueError, "not -1"),
    ],
)
def test_check_address(address: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        check_address(address)
    assert message in str(info.value)


def test_check_address_accepts_a_host_and_port() -> None:
    assert check_address(("localhost", 65535)) == ("localhost", 65535)
