"""The callback server on the wire, read byte for byte from raw sockets (and curl).

* The status line carries the callback's ``statusmsg`` as its reason phrase,
  and ``version: '1.0'`` (or ``'0.9'``) answers with an ``HTTP/1.0`` status
  line and closes the connection.
* A request that asks to upgrade to HTTP/2 (``Upgrade: h2c``, what Java's
  ``HttpClient`` and ``curl --http2`` send on ``http://``) is served as
  HTTP/1.1 with its whole body, and the connection goes on.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
from typing import Any

import pytest

from tests.conftest import need_tool

from .conftest import Recorder, Register, ok

TIMEOUT = 10


class Wire:
    """One raw connection to a callback server: send bytes, read whole answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        """The next answer: its status line, its headers (lower-case names), its body."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        line, *fields = head.split(b"\r\n")
        headers = {}
        for field in fields:
            name, _, value = field.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return line, headers, body

    def closed(self) -> bool:
        """Whether the server closed the connection after what was read."""
        try:
            return self.sock.recv(1) == b"" and not self.buffer
        except ConnectionResetError:
            return True

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"closed mid-answer after {self.buffer!r}")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def ask(port: int, request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") -> tuple[Any, ...]:
    wire = Wire(port)
    try:
        wire.send(request)
        return wire.answer()
    finally:
        wire.close()


# --- the status line --------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({"statuscode": 418, "statusmsg": "I am a teapot"}, b"HTTP/1.1 418 I am a teapot"),
        ({"statuscode": 299, "statusmsg": "Custom Success"}, b"HTTP/1.1 299 Custom Success"),
        (
            {"statuscode": 200, "statusmsg": "Fine, thanks\tfor asking"},
            b"HTTP/1.1 200 Fine, thanks\tfor asking",
        ),
        ({"statuscode": 200, "statusmsg": ""}, b"HTTP/1.1 200 "),
        ({"statuscode": 404}, b"HTTP/1.1 404 Not Found"),  # no statusmsg: the standard one
        ({"statuscode": 299}, b"HTTP/1.1 299 "),  # an unregistered code has none
        ({"statuscode": 200, "statusmsg": "Grüße"}, "HTTP/1.1 200 Grüße".encode("latin-1")),
        ({"statuscode": 200, "statusmsg": "done ✓"}, "HTTP/1.1 200 done ✓".encode()),
    ],
)
def test_statusmsg_is_the_reason_phrase(
    register: Register, changes: dict[str, Any], line: bytes
) -> None:
    _, port = register(lambda request: {**ok(), **changes})
    status_line, headers, body = ask(port)
    assert status_line == line
    assert body == b"ok" and b"connection" not in headers


def test_a_client_reads_back_the_statusmsg_exactly(register: Register) -> None:
    _, port = register(lambda request: {**ok(), "statuscode": 418, "statusmsg": "Grüße, Tea"})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/")
        reply = conn.getresponse()
        assert (reply.status, reply.reason, reply.read()) == (418, "Grüße, Tea", b"ok")
    finally:
        conn.close()


@pytest.mark.parametrize("statusmsg", ["OK\r\nX-Evil: 1", "OK\n", "bell\x07"])
def test_a_statusmsg_with_a_line_break_is_refused_not_sent(
    register: Register, statusmsg: str
) -> None:
    _, port = register(lambda request: {**ok(), "statusmsg": statusmsg})
    line, headers, body = ask(port)
    assert line == b"HTTP/1.1 500 Internal Server Error"
    assert b"x-evil" not in headers
    assert body.decode() == (
        f"invalid response from the callback: statusmsg {statusmsg!r} "
        "contains a line break or control character"
    )


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({"version": "1.0"}, b"HTTP/1.0 200 OK"),
        ({"version": "1.0", "statuscode": 404}, b"HTTP/1.0 404 Not Found"),
        ({"version": "1.0", "statuscode": 299}, b"HTTP/1.0 299 "),
        ({"version": "1.0", "statuscode": 418, "statusmsg": "Short"}, b"HTTP/1.0 418 Short"),
        ({"version": "0.9"}, b"HTTP/1.0 200 OK"),  # 0.9 has no status line to send
        ({"version": "1.0", "headers": {"Connection": "keep-alive"}}, b"HTTP/1.0 200 OK"),
    ],
)
def test_version_1_0_answers_with_an_http_1_0_status_line_and_closes(
    register: Register, changes: dict[str, Any], line: bytes
) -> None:
    _, port = register(lambda request: {**ok(), **changes})
    wire = Wire(port)
    try:
        # Two requests pipelined: the first answer ends the connection.
        wire.send(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        status_line, headers, body = wire.answer()
        assert status_line == line
        assert headers[b"connection"] == b"close"
        assert body == b"ok"
        assert wire.closed()
    finally:
        wire.close()


def test_version_1_1_keeps_the_connection_for_the_next_request(register: Register) -> None:
    _, port = register(lambda request: {**ok(request["path"]), "statusmsg": "Yes"})
    wire = Wire(port)
    try:
        wire.send(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        for path in (b"/1", b"/2"):
            line, headers, body = wire.answer()
            assert (line, headers[b"content-length"], body) == (b"HTTP/1.1 200 Yes", b"2", path)
            assert b"connection" not in headers
    finally:
        wire.close()


# --- Upgrade: h2c is ignored, the body is read ---------------------------------------------

UPGRADE = (
    b"PUT /upload HTTP/1.1\r\n"
    b"Host: x\r\n"
    b"Connection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
    b"Content-Length: 11\r\n"
    b"\r\n"
    b"hello world"
)


def test_a_request_asking_for_h2c_is_served_whole_and_the_next_one_too(
    register: Register,
) -> None:
    recorder = Recorder(lambda seen: ok(f"{seen['verb']} {seen['path']} {seen['body']!r}"))
    _, port = register(recorder)
    wire = Wire(port)
    try:
        wire.send(UPGRADE + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        line, _, body = wire.answer()
        assert (line, body) == (b"HTTP/1.1 200 OK", b"PUT /upload b'hello world'")
        line, _, body = wire.answer()
        assert (line, body) == (b"HTTP/1.1 200 OK", b"GET /next b''")
    finally:
        wire.close()
    first = recorder.next()
    assert first["body"] == b"hello world"
    assert first["headers"]["Upgrade"] == "h2c"  # the callback sees what was asked
    assert recorder.next()["path"] == "/next"


def test_curl_http2_with_a_body_gets_http_1_1(register: Register) -> None:
    recorder = Recorder(lambda seen: ok(f"{len(seen['body'])} bytes"))
    _, port = register(recorder)
    url = f"http://127.0.0.1:{port}/up"
    out = subprocess.run(
        [
            need_tool("curl"),
            "-sS",
            "--http2",
            "-i",
            "-X",
            "PUT",
            "--data-binary",
            "abc" * 1000,
            url,
            "--next",
            "-sS",
            "--http2",
            "-i",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out.count("HTTP/1.1 200 OK") == 2  # no switch to HTTP/2
    assert "3000 bytes" in out and "0 bytes" in out
    seen = recorder.next()
    assert seen["body"] == b"abc" * 1000
    assert seen["headers"]["Upgrade"] == "h2c"
    assert recorder.next()["body"] == b""
