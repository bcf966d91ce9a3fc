"""rawproto.proto.pyts: the sans-IO pyts protocol, fed bytes in memory."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataserve.core.errors import LocalProtocolError, RemoteProtocolError
from dataserve.core.limits import Limits
from rawproto.proto.base import ProtocolConnection
from rawproto.proto.pyts import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    DocumentScanner,
    FrameError,
    Request,
    Response,
    Role,
    error_response,
    not_found,
    request_headers,
    response_headers,
)

# What the original client sends for Request("127.0.0.1", 3000, "/") with
# setHeader("TEST-HEADER", True) and setBody({"test": True}): json.dumps output.
SEED_REQUEST = (
    b'{"headers": {"VERSION": "PYTS/1.0.0", "type": "REQUEST", '
    b'"REQUEST-URL": "pytf://127.0.0.1:3000/", "HOST": "127.0.0.1", "PORT": 3000, '
    b'"ENDPOINT": "/", "TEST-HEADER": true}, "body": {"test": true}}'
)
# What the original server sends after setStatus(200, "OK") and
# setBody("<1>Index page</1>").
SEED_RESPONSE = (
    b'{"headers": {"VERSION": "PYTS/1.0.0", "type": "RESPONSE", "STATUS-TEXT": "OK", '
    b'"STATUS-CODE": 200, "STATUS": "200 OK"}, "body": "<1>Index page</1>"}'
)
NOT_FOUND = (
    b'{"headers": {"VERSION": "PYTS/1.0.0", "type": "RESPONSE", "STATUS-TEXT": "Not Found", '
    b'"STATUS-CODE": 404, "STATUS": "404 Not Found"}, '
    b'"body": "/nope was not found on this server. (404 Not Found)"}'
)


def seed_request() -> Request:
    headers = request_headers("127.0.0.1", 3000, "/")
    headers["TEST-HEADER"] = True
    return Request(headers, {"test": True})


def receive(role: Role, data: bytes, sizes: list[int] | None = None, eof: bool = True) -> Any:
    """Feed ``data`` (in ``sizes`` pieces) and return the one event."""
    conn = Connection(role)
    pieces = [data] if sizes is None else []
    pos = 0
    for size in sizes or []:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + size])
        pos += size
    if sizes is not None and pos < len(data):
        pieces.append(data[pos:])
    for piece in pieces:
        if not piece:
            continue
        conn.receive_data(piece)
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
    if eof:
        conn.receive_data(None)
    return conn.next_event()


def test_request_bytes_match_the_original_client() -> None:
    assert Connection(Role.CLIENT).send(seed_request()) == SEED_REQUEST


def test_response_and_not_found_bytes_match_the_original_server() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(SEED_REQUEST)
    assert server.next_event() == seed_request()
    assert server.send(Response(response_headers(200, "OK"), "<1>Index page</1>")) == SEED_RESPONSE
    server = Connection(Role.SERVER)
    assert server.send(not_found("/nope")) == NOT_FOUND


def test_the_client_reads_the_response() -> None:
    response = receive(Role.CLIENT, SEED_RESPONSE)
    assert isinstance(response, Response)
    assert (response.status_code, response.status_text) == (200, "OK")
    assert response.body == "<1>Index page</1>"


def test_byte_at_a_time_gives_the_same_event_as_all_at_once() -> None:
    assert receive(Role.SERVER, SEED_REQUEST, [1] * len(SEED_REQUEST)) == seed_request()
    assert receive(Role.SERVER, SEED_REQUEST) == seed_request()


def test_the_document_is_complete_when_its_object_closes_without_eof() -> None:
    tricky = Request(
        request_headers("h", 1, "/x"),
        {"s": 'braces } { ] [ and "quotes" and \\ backslashes \\" ', "n": [[{}], {"a": []}]},
    )
    data = Connection(Role.CLIENT).send(tricky)
    assert receive(Role.SERVER, data, [1] * len(data), eof=False) == tricky
    assert receive(Role.SERVER, b"  \r\n" + data, eof=False) == tricky


def test_bytes_after_the_document_are_ignored() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(SEED_REQUEST + b"{garbage")
    assert server.next_event() == seed_request()
    server.receive_data(b"more")
    server.receive_data(None)  # a client may shut down its sending side
    assert server.next_event() is NEED_DATA


def test_a_second_response_raises_instead_of_corrupting_the_stream() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(SEED_REQUEST)
    server.next_event()
    server.send(Response(response_headers(200), "x"))
    assert server.response_sent
    with pytest.raises(LocalProtocolError, match="already sent"):
        server.send(Response(response_headers(200), "y"))


def test_a_body_json_cannot_carry_is_a_local_error_and_nothing_is_sent() -> None:
    server = Connection(Role.SERVER)
    with pytest.raises(LocalProtocolError, match="cannot send"):
        server.send(Response(response_headers(200), object()))
    assert not server.response_sent
    assert server.send(error_response(500, "boom")).startswith(b'{"headers"')


def test_roles_send_their_own_document_kind() -> None:
    with pytest.raises(LocalProtocolError):
        Connection(Role.SERVER).send(seed_request())
    with pytest.raises(LocalProtocolError):
        Connection(Role.CLIENT).send(Response(response_headers(200)))
    with pytest.raises(LocalProtocolError):
        Request([])  # type: ignore[arg-type]


BAD_DOCUMENTS = {
    "not JSON (T22)": b'{"headers": {oops}, "body": 1}',
    "top-level array (T22)": b'[{"headers": {}}]',
    "BOM (T22)": b'\xef\xbb\xbf{"headers": {}, "body": 1}',
    "NaN (T22)": b'{"headers": {"HOST": 1, "PORT": 1, "ENDPOINT": "/"}, "body": NaN}',
    "100,000-digit integer (T23)": b'{"headers": {"HOST": 1, "PORT": 1, "ENDPOINT": "/"}, '
    b'"body": ' + b"1" * 100_000 + b"}",
    "100,000-deep nesting (T23)": b'{"a": ' + b"[" * 100_000,
    "invalid UTF-8": b'{"headers": {"HOST": 1, "PORT": 1, "ENDPOINT": "/\xff"}, "body": 1}',
    "headers not an object": b'{"headers": [], "body": 1}',
    "no body": b'{"headers": {"HOST": 1, "PORT": 1, "ENDPOINT": "/"}}',
    "no required headers": b'{"headers": {"VERSION": "PYTS/1.0.0"}, "body": 1}',
    "ENDPOINT not a string": b'{"headers": {"HOST": 1, "PORT": 1, "ENDPOINT": 5}, "body": 1}',
    "plain HTTP": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_DOCUMENTS))
def test_bad_documents_are_remote_protocol_errors_with_400(name: str) -> None:
    server = Connection(Role.SERVER)
    server.receive_data(BAD_DOCUMENTS[name])
    with pytest.raises(FrameError) as info:
        server.next_event()
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.status == 400
    assert info.value.fatal
    assert info.value.message
    with pytest.raises(FrameError):  # the error sticks
        server.next_event()
    answer = json.loads(server.error_reply(info.value))
    assert answer["headers"]["STATUS"] == "400 Bad Request"
    assert answer["body"] == info.value.message


def test_missing_headers_are_named() -> None:
    with pytest.raises(RemoteProtocolError, match="missing the headers PORT, ENDPOINT"):
        receive(Role.SERVER, b'{"headers": {"HOST": "h"}, "body": 1}')


def test_a_document_over_the_limit_is_413_as_soon_as_it_crosses_it() -> None:
    server = Connection(Role.SERVER, Limits(max_body_size=100))
    server.receive_data(b'{"headers": {}, "body": "' + b"x" * 60)
    assert server.next_event() is NEED_DATA
    assert server.mid_frame
    server.receive_data(b"x" * 60)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status == 413


@pytest.mark.parametrize("data", [b"{", b'  {"headers": {"a": "}'])
def test_eof_before_the_document_is_complete_is_an_error(data: bytes) -> None:
    with pytest.raises(FrameError, match="connection closed before the document"):
        receive(Role.SERVER, data)


@pytest.mark.parametrize("data", [b"", b" \r\n"])
def test_eof_before_a_document_starts_is_a_quiet_close(data: bytes) -> None:
    assert receive(Role.SERVER, data) == ConnectionClosed()


def test_it_is_a_protocol_connection() -> None:
    conn = Connection(Role.SERVER)
    assert isinstance(conn, ProtocolConnection)
    assert conn.handshake_complete
    assert conn.initiate() == b""
    conn.receive_data(b" ")
    assert not conn.mid_frame
    conn.receive_data(SEED_REQUEST[:-1])
    assert conn.next_event() is NEED_DATA
    assert conn.mid_frame
    conn.receive_data(SEED_REQUEST[-1:])
    assert conn.next_event() == seed_request()
    assert conn.complete
    assert not conn.mid_frame


def test_error_reply_is_the_error_document_and_only_one_is_sent() -> None:
    server = Connection(Role.SERVER)
    answer = json.loads(server.error_reply(FrameError("too slow", 408)))
    assert answer == {
        "headers": {
            "VERSION": "PYTS/1.0.0",
            "type": "RESPONSE",
            "STATUS-TEXT": "Request Timeout",
            "STATUS-CODE": 408,
            "STATUS": "408 Request Timeout",
        },
        "body": "too slow",
    }
    assert server.error_reply(FrameError("again", 400)) == b""
    assert Connection(Role.CLIENT).error_reply(FrameError("x")) == b""


def test_the_scanner_refuses_deep_nesting_before_parsing() -> None:
    scanner = DocumentScanner(max_depth=3)
    with pytest.raises(RemoteProtocolError, match="deeper than 3"):
        scanner.feed(b'{"a": [[[')
    scanner = DocumentScanner(max_depth=3)
    assert scanner.feed(b'{"a": [["]]]]]]"]]}') == 19


def _whole(data: bytes, limits: Limits | None = None) -> tuple[Any, bool]:
    """The event for ``data`` read whole, and whether the scanner had to run."""
    conn = Connection(Role.SERVER, limits or Limits())
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except RemoteProtocolError as exc:
        event = exc
    return event, conn._scanner.started


def test_a_small_document_read_whole_is_parsed_without_the_scanner() -> None:
    event, scanned = _whole(b"  " + SEED_REQUEST + b"\r\n")
    assert event == seed_request() and not scanned


@pytest.mark.parametrize(
    "data",
    [
        SEED_REQUEST[:-1] + b' , "x": "}',  # ends in "}" inside a string: incomplete
        SEED_REQUEST + b"{}",  # a document, then more
        b'{"headers": {}, "body": 1}',  # JSON, not a request: the 400 is the scanner's
    ],
)
def test_what_is_not_one_whole_request_is_left_to_the_scanner(data: bytes) -> None:
    event, scanned = _whole(data)
    assert scanned
    try:
        expected = receive(Role.SERVER, data, sizes=[1] * len(data), eof=False)
    except RemoteProtocolError as exc:
        expected = exc
    assert type(event) is type(expected) and str(event) == str(expected)


def test_a_document_that_might_nest_too_deep_is_left_to_the_scanner() -> None:
    deep = b'{"headers": {"HOST": "h", "PORT": 1, "ENDPOINT": "/"}, "body": [[[[1]]]]}'
    event, scanned = _whole(deep, Limits(max_depth=3))
    assert scanned and isinstance(event, FrameError) and "deeper than 3" in event.message
    event, scanned = _whole(deep, Limits(max_depth=6))
    assert isinstance(event, Request) and not scanned


# --- fuzzing -----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    json_values,
    st.lists(st.integers(1, 32), max_size=100),
)
def test_random_splits_of_a_valid_document_give_the_same_event(
    extra: dict[str, Any], body: Any, sizes: list[int]
) -> None:
    headers = {**extra, **request_headers("127.0.0.1", 3000, "/x")}
    request = Request(headers, body)
    data = Connection(Role.CLIENT).send(request)
    assert receive(Role.SERVER, data, eof=False) == request
    assert receive(Role.SERVER, data, sizes, eof=False) == request


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(1, 16), max_size=20))
def test_random_bytes_give_an_event_or_a_protocol_error_only(junk: bytes, sizes: list[int]) -> None:
    for role in Role:
        try:
            receive(role, junk, sizes)
        except FrameError as exc:
            assert exc.status in (400, 413)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]"\\:, ab1', max_size=60))
def test_random_bracket_soup_gives_an_event_or_a_protocol_error_only(text: str) -> None:
    try:
        receive(Role.SERVER, b'{"headers": ' + text.encode(), [3] * 30)
    except FrameError as exc:
        assert exc.status == 400
