"""dataserve.http.parsing: bytes in, requests out, within the limits on the request head."""

from __future__ import annotations

from typing import Any

from dataserve.http.head import Head
from dataserve.http.parsing import RequestParser
from dataserve.http.scope import Scopes

from .fakes import Transport, Watchdog

MAX_HEADER_SIZE = 200


class Body:
    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.complete = False

    def on_body(self, chunk: bytes) -> None:
        self.pieces.append(bytes(chunk))

    def on_message_complete(self) -> None:
        self.complete = True

    def reading_into(self) -> None:
        return None  # taken in pieces: nothing is read past the parser


class Cycle:
    def __init__(self, scope: dict[str, Any], head: Head) -> None:
        self.scope = scope
        self.head = head
        self.body = Body()


class Connection:
    def __init__(self) -> None:
        self.transport = Transport()
        self.answering = False
        self.requests: list[Cycle] = []
        self.read: list[Cycle] = []
        self.refused: list[tuple[int, str, bytes]] = []

    def on_request(self, scope: dict[str, Any], head: Head) -> Cycle:
        cycle = Cycle(scope, head)
        self.requests.append(cycle)
        return cycle

    def on_request_read(self, cycle: Cycle) -> None:
        self.read.append(cycle)

    def refuse(self, status: int, message: str, content_type: bytes = b"text/plain") -> None:
        self.refused.append((status, message, content_type))
        self.transport.close()


def connected() -> tuple[RequestParser, Connection, Watchdog]:
    conn = Connection()
    watchdog = Watchdog()
    scopes = Scopes(app_state={}, root_path="", asgi={"version": "3.0"})
    scopes.connected(("127.0.0.1", 80), ("127.0.0.1", 5000), "http")
    parser = RequestParser(
        conn,  # type: ignore[arg-type]
        scopes,
        watchdog,  # type: ignore[arg-type]
        max_header_size=MAX_HEADER_SIZE,
        header_timeout=10.0,
    )
    parser.connected()
    return parser, conn, watchdog


def feed(parser: RequestParser, data: bytes) -> None:
    parser.feed(memoryview(data))


def test_a_request_is_handed_on_when_its_head_is_in_and_its_body_follows() -> None:
    parser, conn, watchdog = connected()
    feed(parser, b"PUT /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    [cycle] = conn.requests
    assert cycle.scope["method"] == "PUT" and cycle.scope["path"] == "/a"
    assert cycle.scope["headers"] == [(b"host", b"x"), (b"content-length", b"5")]
    assert cycle.head.length == 5 and cycle.head.keep_alive
    assert parser.receiving and not parser.between_requests and not conn.read
    assert not watchdog.live()  # the head came whole: its deadline is stopped
    feed(parser, b"cde")
    assert cycle.body.pieces == [b"ab", b"cde"] and cycle.body.complete
    assert conn.read == [cycle] and parser.between_requests and not parser.receiving


def test_pipelined_requests_in_one_read_are_each_handed_on() -> None:
    parser, conn, _ = connected()
    feed(parser, b"POST /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [c.scope["path"] for c in conn.requests] == ["/1", "/2"]
    assert conn.read == conn.requests


def test_headers_over_the_limit_are_431_even_while_they_arrive() -> None:
    parser, conn, _ = connected()
    feed(parser, b"PUT / HTTP/1.1\r\nHost: x\r\n")
    feed(parser, b"X-Long: " + b"a" * MAX_HEADER_SIZE)
    assert [status for status, _, _ in conn.refused] == [431]
    assert not conn.requests


def test_trailers_count_against_the_same_limit() -> None:
    parser, conn, _ = connected()
    feed(
        parser,
        b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\nX-Trailer: " + b"t" * MAX_HEADER_SIZE + b"\r\n\r\n",
    )
    assert len(conn.requests) == 1
    assert conn.refused[0][:2] == (
        431,
        f"request headers and trailers are over the limit of {MAX_HEADER_SIZE} bytes",
    )


def test_bytes_that_are_not_http_are_400() -> None:
    parser, conn, _ = connected()
    feed(parser, b"\x16\x03\x01 not http\r\n\r\n")
    assert conn.refused == [(400, "Invalid HTTP request received.", b"text/plain; charset=utf-8")]


def test_a_refused_head_is_answered_with_its_refusal() -> None:
    parser, conn, _ = connected()
    feed(parser, b"PUT / HTTP/1.1\r\n\r\n")  # no Host
    assert conn.refused[0][0] == 400 and "Host" in conn.refused[0][1]
    assert not conn.requests


def test_the_header_deadline_counts_from_connect_and_from_a_request_first_byte() -> None:
    parser, conn, watchdog = connected()
    [deadline] = watchdog.live()
    deadline.fire()  # connected, never sent a byte: closed without an answer
    assert conn.transport.closing and not conn.refused

    parser, conn, watchdog = connected()
    feed(parser, b"PUT / HTTP/1.1\r\nHost: x\r\n")
    [deadline] = watchdog.live()
    deadline.fire()
    assert conn.refused == [(408, "request headers not received within 10 s", b"text/plain")]


def test_a_pipelined_head_is_not_timed_out_while_an_answer_is_being_produced() -> None:
    parser, conn, watchdog = connected()
    feed(parser, b"PUT / HTTP/1.1\r\nHost: x\r\n\r\nPUT / HTTP/1.1\r\n")
    conn.answering = True
    watchdog.live()[-1].fire()
    assert not conn.refused and len(watchdog.live()) == 1  # judged again later


def test_an_upgrade_is_ignored_and_its_body_is_the_request_body() -> None:
    parser, conn, _ = connected()
    feed(
        parser,
        b"PUT / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 3\r\n\r\nabcPUT /next HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    first, second = conn.requests
    assert first.head.upgrade and b"".join(first.body.pieces) == b"abc"
    assert first.body.complete and second.scope["path"] == "/next"
    assert not conn.refused
