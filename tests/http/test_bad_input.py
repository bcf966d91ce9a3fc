"""Hostile and broken HTTP input, spoken byte by byte to a real server.

Each row of shared BAD-INPUTS that applies to us: the exact status and
message, how the connection ends, and that the server keeps serving.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dataserve import HTTPDataHandler, create_app
from dataserve.core.limits import Limits
from dataserve.http.server import BackgroundServer

from .conftest import EchoHandler

HEAD = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"


def exchange(port: int, data: bytes, timeout: float = 10) -> tuple[bytes, bool]:
    """Send ``data``; read until the server closes. -> (reply, closed by server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except TimeoutError:
            return reply, False
        except ConnectionResetError:
            pass
        return reply, True


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def body_of(reply: bytes) -> bytes:
    return reply.split(b"\r\n\r\n", 1)[1]


def still_serving(server: BackgroundServer) -> None:
    r = httpx.put(server.url + "/echo", content=b"alive", headers={"content-type": "text/plain"})
    assert r.status_code == 200 and r.text == "alive"


class Counting(HTTPDataHandler):
    calls = 0

    def handle_request(self, resource: str, payload: Any) -> Any:
        type(self).calls += 1
        return payload


@pytest.fixture
def limited(serve: Any) -> BackgroundServer:
    limits = Limits(max_body_size=1 << 20, body_timeout=0.5, header_timeout=0.5)
    server: BackgroundServer = serve(create_app(EchoHandler, limits=limits))
    return server


SMUGGLING = {
    "H1 Content-Length and chunked": HEAD
    + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "H2 two Content-Lengths": HEAD + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "H2 Content-Length list": HEAD + b"Content-Length: 5, 7\r\n\r\nabcde",
    "H3 +5": HEAD + b"Content-Length: +5\r\n\r\nabcde",
    "H3 0x5": HEAD + b"Content-Length: 0x5\r\n\r\nabcde",
    "H3 1_0": HEAD + b"Content-Length: 1_0\r\n\r\nabcde",
    "H3 abc": HEAD + b"Content-Length: abc\r\n\r\n",
    "H4 chunked not last": HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "chunked twice": HEAD
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "H5 vertical tab": HEAD + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
    "H7 chunk without CRLF": HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
    "H8 chunk size 0x5": HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n",
    "H8 chunk size -1": HEAD + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabcde\r\n0\r\n\r\n",
    "H9 CR in chunk extension": HEAD
    + b"Transfer-Encoding: chunked\r\n\r\n2;a=\rb\r\nab\r\n0\r\n\r\n",
    "H10 chunk spills": HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcdefg\r\n0\r\n\r\n",
    "H11 bare CR": b"PUT /echo HTTP/1.1\rHost: x\r\n\r\n",
    "H11 space before colon": HEAD + b"Content-Length : 2\r\n\r\nab",
    "H11 obs-fold": HEAD + b"X-A: a\r\n b\r\nContent-Length: 2\r\n\r\nab",
    "H13 NUL in a header value": HEAD + b"X-A: a\x00b\r\nContent-Length: 2\r\n\r\nab",
    "H28 target not starting with /": b"PUT @evil.com HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_malformed_framing_gets_400_and_close(
    echo_server: BackgroundServer, request_bytes: bytes
) -> None:
    # uvicorn's parser (llhttp) refuses these itself; this proves it for our stack.
    reply, closed = exchange(echo_server.port, request_bytes)
    assert status_of(reply) == 400
    assert body_of(reply) == b"Invalid HTTP request received."
    assert closed
    still_serving(echo_server)


# Codings llhttp would take or refuse after the headers: the protocol's own
# check (dataserve.http.head) answers first, saying what is allowed.
TE_ONLY_CHUNKED = (
    b"Transfer-Encoding must be chunked alone: chunked is the final coding and "
    b"no other is applied (RFC 9112 6.1)"
)
CODINGS = {
    "H5 identity": HEAD + b"Transfer-Encoding: identity\r\n\r\nab",
    "identity then chunked": HEAD
    + b"Transfer-Encoding: identity, chunked\r\nContent-Type: text/plain\r\n\r\n"
    + b"2\r\nab\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", CODINGS.values(), ids=CODINGS.keys())
def test_a_coding_other_than_chunked_alone_gets_400_and_close(
    echo_server: BackgroundServer, request_bytes: bytes
) -> None:
    reply, closed = exchange(echo_server.port, request_bytes)
    assert status_of(reply) == 400
    assert body_of(reply) == TE_ONLY_CHUNKED
    assert closed
    still_serving(echo_server)


VERSIONS = {
    "HTTP/2.0": (
        b"PUT /echo HTTP/2.0\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
        505,
        b"HTTP/2.0 is not supported: this server speaks HTTP/1.1",
    ),
    "no version": (
        b"PUT /echo\r\n\r\n",
        400,
        b"the request line has no HTTP version (HTTP/1.1 expected)",
    ),
}


@pytest.mark.parametrize("case", VERSIONS.values(), ids=VERSIONS.keys())
def test_a_request_line_without_http_1_gets_its_status_and_close(
    echo_server: BackgroundServer, case: tuple[bytes, int, bytes]
) -> None:
    request_bytes, status, message = case
    reply, closed = exchange(echo_server.port, request_bytes)
    assert status_of(reply) == status
    assert body_of(reply) == message
    assert closed
    still_serving(echo_server)


HOSTS = {
    "H12 no Host": b"PUT /echo HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nab",
    "H12 two Hosts": HEAD + b"Host: y\r\nContent-Length: 2\r\n\r\nab",
    "H12 Host with userinfo": b"PUT /echo HTTP/1.1\r\nHost: u@x\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", HOSTS.values(), ids=HOSTS.keys())
def test_host_header_must_be_exactly_one(
    echo_server: BackgroundServer, request_bytes: bytes
) -> None:
    reply, closed = exchange(echo_server.port, request_bytes)
    assert status_of(reply) == 400
    assert body_of(reply) == b"an HTTP/1.1 request needs exactly one valid Host header"
    assert closed
    still_serving(echo_server)


def test_h6_transfer_encoding_on_http10_is_refused(echo_server: BackgroundServer) -> None:
    req = (
        b"PUT /echo HTTP/1.0\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    )
    reply, closed = exchange(echo_server.port, req)
    assert status_of(reply) == 400
    assert body_of(reply) == b"Transfer-Encoding is not allowed in HTTP/1.0"
    assert closed


def test_h14_oversized_headers_get_431(echo_server: BackgroundServer) -> None:
    req = HEAD + b"X-A: " + b"a" * 70_000 + b"\r\nContent-Length: 2\r\n\r\nab"
    reply, closed = exchange(echo_server.port, req)
    assert status_of(reply) == 431
    assert body_of(reply) == b"request headers are over the limit of 16384 bytes"
    assert closed
    still_serving(echo_server)


def test_h15_many_small_headers_are_bounded_by_size(echo_server: BackgroundServer) -> None:
    req = HEAD + b"".join(b"X-%d: v\r\n" % i for i in range(10_000)) + b"Content-Length: 0\r\n\r\n"
    reply, closed = exchange(echo_server.port, req)
    assert status_of(reply) == 431 and closed


def test_headers_that_never_end_are_cut_at_the_size_limit(echo_server: BackgroundServer) -> None:
    # sent in pieces and never completed: the raw byte count catches it
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=10) as sock:
        sock.sendall(HEAD)
        reply = b""
        try:
            for _ in range(100):
                sock.sendall(b"X-Filler: " + b"b" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    assert status_of(reply) == 431


def test_unfinished_oversized_headers_in_one_send_get_431_before_the_deadline(
    echo_server: BackgroundServer,
) -> None:
    # Usually one read: the request begins in it and its headers never end.
    # The answer comes from the size, not from the 10 s header deadline.
    reply, closed = exchange(echo_server.port, HEAD + b"X-Filler: " + b"f" * 20_000, timeout=5)
    assert status_of(reply) == 431
    assert body_of(reply) == b"request headers are over the limit of 16384 bytes"
    assert closed
    still_serving(echo_server)


def test_unfinished_oversized_headers_after_a_pipelined_request_get_431(
    echo_server: BackgroundServer,
) -> None:
    # A read holding the end of one request and the start of the next: of
    # that read, only what was parsed counts for the second; every later
    # byte counts whole. So the cut comes at most one read late.
    first = HEAD + b"Content-Length: 2\r\n\r\nok"
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=5) as sock:
        sock.sendall(first + HEAD + b"X-Filler: " + b"f" * 8_000)
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        try:
            sock.sendall(b"f" * 17_000)
            while chunk := sock.recv(65536):
                reply += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
    answers = reply.split(b"HTTP/1.1 ")
    assert len(answers) == 3 and answers[2].startswith(b"431 ")


def test_h16_huge_content_length_is_refused_at_once_without_reading(
    echo_server: BackgroundServer,
) -> None:
    # 3 GB announced, nothing sent: the answer comes from the header alone.
    started = time.monotonic()
    reply, closed = exchange(echo_server.port, HEAD + b"Content-Length: 3000000000\r\n\r\n")
    assert status_of(reply) == 413
    assert body_of(reply) == (
        b"request body of 3000000000 bytes is over the limit of 1073741824 bytes"
    )
    assert closed and time.monotonic() - started < 5
    still_serving(echo_server)


def test_h32_pipelined_request_after_413_is_not_processed(serve: Any) -> None:
    Counting.calls = 0
    server = serve(create_app(Counting, limits=Limits(max_body_size=10)))
    req = HEAD + b"Content-Length: 20\r\n\r\n" + b"x" * 20
    req += HEAD + b"Content-Length: 2\r\n\r\nok"
    reply, closed = exchange(server.port, req)
    assert status_of(reply) == 413 and closed
    assert reply.count(b"HTTP/1.1") == 1
    assert Counting.calls == 0


def test_h18_body_that_stalls_gets_408(limited: BackgroundServer) -> None:
    reply, closed = exchange(limited.port, HEAD + b"Content-Length: 1000\r\n\r\n0123456789")
    assert status_of(reply) == 408
    assert body_of(reply) == b"request body stalled: nothing received for 0.5 s"
    assert closed
    still_serving(limited)


def test_truncated_body_then_close_is_not_handled(serve: Any) -> None:
    Counting.calls = 0
    server = serve(create_app(Counting))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b"x" * 10)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""  # the server closes; nothing to answer
    r = httpx.put(server.url + "/echo", content=b"ok", headers={"content-type": "text/plain"})
    assert r.text == "ok"
    assert Counting.calls == 1  # only the complete request reached the handler


def test_client_disconnecting_mid_upload_changes_nothing(serve: Any) -> None:
    Counting.calls = 0
    server = serve(create_app(Counting))
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(HEAD + b"Content-Length: 1000000\r\n\r\n" + b"x" * 50_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST mid-body
    r = httpx.put(server.url + "/echo", content=b"ok", headers={"content-type": "text/plain"})
    assert r.text == "ok"
    assert Counting.calls == 1


def test_h19_slow_headers_are_closed_at_the_deadline_not_per_byte(
    limited: BackgroundServer,
) -> None:
    # One header byte every 100 ms: each byte would restart uvicorn's own timer.
    stop = threading.Event()
    replies: list[bytes] = []

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
            try:
                for b in HEAD + b"X-Slow: " + b"s" * 1000:
                    sock.sendall(bytes([b]))
                    if stop.wait(0.1):  # sleep-ok: the trickle is the attack
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply = b""
            try:
                while chunk := sock.recv(1024):
                    reply += chunk
            except (ConnectionResetError, TimeoutError):
                pass
            replies.append(reply)

    started = time.monotonic()
    threads = [threading.Thread(target=trickle) for _ in range(20)]
    for t in threads:
        t.start()
    # normal clients are served while the slow ones hold connections
    still_serving(limited)
    for t in threads:
        t.join(15)
    stop.set()
    assert len(replies) == 20
    for reply in replies:
        assert status_of(reply) == 408
        assert body_of(reply) == b"request headers not received within 0.5 s"
    assert time.monotonic() - started < 10


def test_headers_that_stop_after_one_read_get_408(limited: BackgroundServer) -> None:
    # The request began and stalled inside its first read: that is a
    # request timing out (408), not a connection that never spoke.
    reply, closed = exchange(limited.port, HEAD + b"X-Partial: abc")
    assert status_of(reply) == 408
    assert body_of(reply) == b"request headers not received within 0.5 s"
    assert closed


def test_idle_connection_without_a_byte_is_closed(limited: BackgroundServer) -> None:
    reply, closed = exchange(limited.port, b"")
    assert reply == b"" and closed


def test_h34_over_the_connection_limit_gets_503(serve: Any) -> None:
    release = threading.Event()
    entered = threading.Event()

    def handler(resource: str, payload: Any) -> Any:
        entered.set()
        release.wait(20)
        return "done"

    server = serve(create_app(handler, limits=Limits(max_connections=1)))
    holder = threading.Thread(target=lambda: httpx.put(server.url + "/x", timeout=30))
    holder.start()
    assert entered.wait(10)
    reply, closed = exchange(
        server.port, b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    assert status_of(reply) == 503 and closed
    release.set()
    holder.join(20)


def test_h29_crlf_in_the_path_does_not_inject_headers(echo_server: BackgroundServer) -> None:
    r = httpx.put(echo_server.url + "/x%0d%0aX-Injected:%201", content=b"")
    assert r.status_code == 404
    assert "x-injected" not in r.headers
    assert "\\r\\n" in r.text  # the resource is echoed as a quoted repr


@pytest.fixture
def raw_port(echo_server: BackgroundServer) -> Iterator[int]:
    yield echo_server.port


def test_keep_alive_serves_many_requests_on_one_connection(raw_port: int) -> None:
    with socket.create_connection(("127.0.0.1", raw_port), timeout=10) as sock:
        for i in range(50):
            body = b"%d" % i
            sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            reply = b""
            while not reply.endswith(b"\r\n\r\n" + body):
                reply += sock.recv(4096)
            assert status_of(reply) == 200
