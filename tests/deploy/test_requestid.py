"""Request ids: from X-Request-ID or generated, in the reply, and visible to the handler."""

from __future__ import annotations

import re
import socket
from typing import Any

import httpx
import pytest

from dataserve import create_app, request_id
from dataserve.ops import OpsConfig

from . import handlers

GENERATED = re.compile(r"^[0-9a-f]{12}-[0-9a-f]+$")


def raw_put(port: int, path: str, headers: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """A PUT with exactly these header bytes (httpx refuses to send some of them)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), fields, body


@pytest.mark.parametrize(
    "handler",
    [handlers.Probe, handlers.async_rid, handlers.inline_rid, handlers.router],
    ids=["def-on-the-handler-thread", "async", "inline", "router"],
)
def test_the_handler_sees_the_id_the_client_sent(serve: Any, handler: Any) -> None:
    server = serve(create_app(handler))
    with httpx.Client(base_url=server.url) as http:
        r = http.put("/rid", headers={"X-Request-ID": "trace-42:abc/DEF=="})
        assert r.text == "trace-42:abc/DEF=="  # a str: text/plain
        assert r.headers["x-request-id"] == "trace-42:abc/DEF=="
        # none sent: one is generated, the same in the reply and in the handler
        r = http.put("/rid")
        assert GENERATED.match(r.headers["x-request-id"])
        assert r.text == r.headers["x-request-id"]


def test_generated_ids_are_unique(serve: Any) -> None:
    server = serve(create_app(handlers.Probe))
    with httpx.Client(base_url=server.url) as http:
        ids = {http.put("/rid").headers["x-request-id"] for _ in range(200)}
    assert len(ids) == 200


def test_every_reply_carries_its_id_errors_included(serve: Any) -> None:
    server = serve(create_app(handlers.Probe))
    with httpx.Client(base_url=server.url) as http:
        for method, path, status in [
            ("PUT", "/nothing-here", 404),
            ("PUT", "/boom", 500),
            ("GET", "/echo", 405),
        ]:
            r = http.request(method, path, headers={"x-request-id": f"id-{status}"})
            assert r.status_code == status
            assert r.headers["x-request-id"] == f"id-{status}"
        r = http.put("/echo", content=b"[", headers={"content-type": "application/json"})
        assert r.status_code == 400 and GENERATED.match(r.headers["x-request-id"])


@pytest.mark.parametrize(
    "value",
    [
        b"a" * 129,  # longer than 128
        b"two words",
        b'quote"d',
        b"back\\slash",
        b"caf\xc3\xa9",  # not ASCII
        b"",
    ],
    ids=["too-long", "space", "quote", "backslash", "non-ascii", "empty"],
)
def test_an_insane_client_id_is_replaced_not_echoed(serve: Any, value: bytes) -> None:
    server = serve(create_app(handlers.Probe))
    status, fields, body = raw_put(server.port, "/rid", [b"X-Request-ID: " + value])
    assert status == 200
    assert GENERATED.match(fields["x-request-id"]), fields
    assert body == fields["x-request-id"].encode()


def test_the_longest_sane_id_is_kept(serve: Any) -> None:
    server = serve(create_app(handlers.Probe))
    value = "x" * 128
    assert httpx.put(server.url + "/rid", headers={"x-request-id": value}).text == value


def test_request_ids_off_means_no_header_and_none(serve: Any) -> None:
    server = serve(create_app(handlers.Probe, ops=OpsConfig(request_id=False)))
    r = httpx.put(server.url + "/rid", headers={"x-request-id": "abc"})
    assert r.status_code == 404  # the handler got None: no id
    assert "x-request-id" not in r.headers


def test_request_ids_work_with_metrics_and_access_log_off(serve: Any) -> None:
    ops = OpsConfig(metrics=False, access_log=False)
    server = serve(create_app(handlers.Probe, ops=ops))
    r = httpx.put(server.url + "/rid", headers={"x-request-id": "lean"})
    assert r.text == "lean" and r.headers["x-request-id"] == "lean"


def test_outside_a_request_there_is_no_id() -> None:
    assert request_id() is None
