"""The HTTP protocol's ASGI extensions, on a real server: the reason phrase and
HTTP/1.0 status lines an app may ask for (``dataserve.http.cycle``)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

Scope = dict[str, Any]


def app_answering(start: dict[str, Any]) -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", b"2")], **start})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def exchange(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
            if reply.endswith(b"ok") and b"connection: close" not in reply:
                break
    return reply


@pytest.mark.parametrize(
    ("start", "line", "closes"),
    [
        ({}, b"HTTP/1.1 200 OK\r\n", False),
        ({"dataserve.reason": "I am a teapot"}, b"HTTP/1.1 200 I am a teapot\r\n", False),
        ({"dataserve.http_version": "1.0"}, b"HTTP/1.0 200 OK\r\n", True),
        (
            {"dataserve.http_version": "1.0", "dataserve.reason": "Fine"},
            b"HTTP/1.0 200 Fine\r\n",
            True,
        ),
    ],
)
def test_status_line_as_the_app_asks(
    serve: Any, start: dict[str, Any], line: bytes, closes: bool
) -> None:
    server = serve(app_answering(start))
    reply = exchange(server.port)
    assert reply.startswith(line)
    assert (b"connection: close" in reply) is closes
