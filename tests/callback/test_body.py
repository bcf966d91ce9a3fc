"""``datastream``: a large body streamed, and every way a body can go wrong."""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dataserve.core.errors import DataServeError, LimitExceeded, RemoteProtocolError
from dataserve.core.limits import Limits, MiB

from .conftest import Recorder, Register, ok

CHUNK = bytes(range(256)) * 256  # 64 KiB


def test_a_50_mib_body_is_streamed_with_bounded_memory(register: Register) -> None:
    total = 50 * MiB
    reads: list[int] = []

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        digest = hashlib.sha256()
        while data := request["datastream"].read(MiB):
            reads.append(len(data))
            digest.update(data)
        return ok(digest.hexdigest())

    _, port = register(callback)
    expected = hashlib.sha256()
    for _ in range(total // len(CHUNK)):
        expected.update(CHUNK)

    def body() -> Iterator[bytes]:
        for _ in range(total // len(CHUNK)):
            yield CHUNK  # the same object each time: the client holds 64 KiB

    tracemalloc.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("PUT", "/big", body=body(), headers={"Content-Length": str(total)})
        r = conn.getresponse()
        answer = r.read().decode()
        conn.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status == 200
    assert answer == expected.hexdigest()
    assert sum(reads) == total and len(reads) == 50
    assert all(n == MiB for n in reads)
    # Everything the process allocated meanwhile (server, callback and
    # client) stays a small multiple of the 1 MiB reads, far below 50 MiB.
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_a_chunked_body_is_read_in_exact_sizes(register: Register) -> None:
    sizes: list[int] = []

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        stream = request["datastream"]
        assert stream.read(0) == b""
        while data := stream.read(1000):
            sizes.append(len(data))
        return ok(str(sum(sizes)))

    _, port = register(callback)
    size = 3 * MiB + 123

    def body() -> Iterator[bytes]:
        for _ in range(size // len(CHUNK)):
            yield CHUNK
        yield b"x" * (size % len(CHUNK))

    r = httpx.post(f"http://127.0.0.1:{port}/", content=body())
    assert r.text == str(size)
    assert all(n == 1000 for n in sizes[:-1]) and sizes[-1] == size % 1000


def test_content_length_over_the_limit_is_413_and_the_callback_is_not_called(
    register: Register,
) -> None:
    recorder = Recorder()
    _, port = register(recorder, limits=Limits(max_body_size=1000))
    r = httpx.post(f"http://127.0.0.1:{port}/", content=b"x" * 1001)
    assert r.status_code == 413
    assert r.text == "request body of 1001 bytes is over the limit of 1000 bytes"
    assert r.headers["connection"] == "close"
    assert recorder.requests.empty()
    # the server keeps serving
    assert httpx.post(f"http://127.0.0.1:{port}/", content=b"x" * 1000).status_code == 200
    assert recorder.next()["body"] == b"x" * 1000


def errors_seen(errors: list[BaseException]) -> Any:
    """A callback that reads the whole body, records the error, answers 200 anyway."""

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        try:
            while request["datastream"].read(4096):
                pass
        except DataServeError as exc:
            errors.append(exc)
        try:
            request["datastream"].read(1)
        except DataServeError as exc:  # every later read fails the same way
            errors.append(exc)
        return ok("callback's own answer")

    return callback


def test_a_chunked_body_crossing_the_limit_is_413(register: Register) -> None:
    errors: list[BaseException] = []
    _, port = register(errors_seen(errors), limits=Limits(max_body_size=100_000))

    def body() -> Iterator[bytes]:
        for _ in range(4):
            yield CHUNK

    r = httpx.post(f"http://127.0.0.1:{port}/", content=body())
    assert r.status_code == 413
    assert r.text == "request body is over the limit of 100000 bytes"
    assert r.headers["connection"] == "close"
    assert len(errors) == 2 and errors[0] is errors[1]
    assert isinstance(errors[0], LimitExceeded) and errors[0].status == 413
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "callback's own answer"


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_a_stalled_body_is_408(register: Register) -> None:
    errors: list[BaseException] = []
    _, port = register(errors_seen(errors), limits=Limits(body_timeout=0.3))
    request = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
    reply = raw_exchange(port, request)  # then sends nothing more
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head
    assert body == b"request body stalled: nothing received for 0.3 s"
    assert isinstance(errors[0], RemoteProtocolError) and errors[0].status == 408
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200


def test_a_client_leaving_mid_body_is_an_error_for_the_callback(register: Register) -> None:
    errors: list[BaseException] = []
    entered = threading.Event()
    done = threading.Event()

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        errors_seen(errors)(request)
        done.set()
        return ok()

    _, port = register(callback)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly this")
        assert entered.wait(10)
    assert done.wait(10)
    assert isinstance(errors[0], RemoteProtocolError)
    assert "disconnected before sending the whole body" in errors[0].message
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200


@pytest.mark.parametrize("n", [-1, 1, 5, 100])
def test_read_sizes(register: Register, n: int) -> None:
    def callback(request: dict[str, Any]) -> dict[str, Any]:
        parts = []
        while data := request["datastream"].read(n):
            parts.append(data)
        return ok(b"|".join(parts))

    _, port = register(callback)
    r = httpx.post(f"http://127.0.0.1:{port}/", content=b"0123456789")
    expected = (
        b"0123456789" if n < 0 else b"|".join(b"0123456789"[i : i + n] for i in range(0, 10, n))
    )
    assert r.content == expected


def test_a_body_the_callback_ignores_is_discarded(register: Register) -> None:
    _, port = register(lambda request: ok(request["path"]))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        first = client.post("/first", content=CHUNK * 80)  # 5 MiB, never read
        second = client.post("/second", content=b"small")
        assert (first.text, second.text) == ("/first", "/second")
        # one keep-alive connection carried both
        assert first.extensions["network_stream"] is second.extensions["network_stream"]
