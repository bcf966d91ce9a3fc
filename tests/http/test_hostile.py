"""Hostile clients against a real ``dataserve serve``: each is answered or cut,
within its bound, while a probe client keeps being served.

The bounds: requests read ahead of the answer (``max_pipelined``), replies a
peer does not read (``send_timeout``), headers and trailers together
(``max_header_size``), the TLS handshake (``handshake_timeout``).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from dataserve import AsyncHTTPDataClient, HTTPDataClient
from tests.conftest import ServerProcess
from tests.http.test_data_path import settled_rss, status
from tests.probe import Probe

MiB = 1 << 20
SERVE = [sys.executable, "-m", "dataserve", "serve", "--port", "0", "--log-level", "warning"]

pytestmark = pytest.mark.slow


def pid_of(port: int) -> int:
    with HTTPDataClient(port, "http://127.0.0.1:") as client:
        return int(client.send("/pid"))


@pytest.fixture
def echo() -> Iterator[ServerProcess]:
    server = ServerProcess([*SERVE, "tests.http.handlers:Echo", "--send-timeout", "1"])
    yield server
    assert server.stop() == 0


@pytest.fixture
def patient_echo() -> Iterator[ServerProcess]:
    """An echo server whose send timeout (30 s) outlasts the test."""
    server = ServerProcess([*SERVE, "tests.http.handlers:Echo"])
    yield server
    assert server.stop() == 0


def test_pipelining_without_reading_replies_is_bounded(patient_echo: ServerProcess) -> None:
    """Small PUTs pipelined without reading a reply: the server stops reading
    once ``max_pipelined`` are queued (receive() cannot resume it)."""
    echo = patient_echo
    pid = pid_of(echo.port)
    idle = status(pid)["VmRSS"]
    one = (
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 1024\r\n\r\n" + b"\x07" * 1024
    )
    batch = one * 256
    sent = 0
    with Probe(echo.port) as probe, socket.create_connection(("127.0.0.1", echo.port)) as sock:
        sock.settimeout(3)
        try:
            while sent < 200 * MiB:
                sock.sendall(batch)
                sent += len(batch)
        except TimeoutError:
            pass  # the server stopped reading: the kernel's buffers are full
        grown = status(pid)["VmRSS"] - idle
    print(f"pipelined {sent / MiB:.1f} MiB unread: RSS grew {grown / MiB:.1f} MiB")
    assert sent < 200 * MiB, "the server read everything: reading never stopped"
    assert grown <= 32 * MiB, f"RSS grew {grown / MiB:.0f} MiB for {sent / MiB:.0f} MiB pipelined"
    assert not probe.failures
    assert probe.p99 < 1.0, probe.summary()
    with HTTPDataClient(echo.port, "http://127.0.0.1:") as client:
        assert client.send("/echo", "still serving") == "still serving"


def test_peers_that_never_read_their_reply_are_cut_and_release_it(echo: ServerProcess) -> None:
    pid = pid_of(echo.port)
    idle = settled_rss(echo.port, pid, status(pid)["VmRSS"])
    size = 32 * MiB
    head = (
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    socks = []
    with Probe(echo.port) as probe:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", echo.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(head + b"\x05" * size)  # the server reads the body...
            socks.append(sock)  # ...and its reply is never read
        started = time.monotonic()
        # Each held reply is released once its peer is cut (send_timeout 1 s).
        after = settled_rss(echo.port, pid, idle + 16 * MiB)
        elapsed = time.monotonic() - started
    assert after <= idle + 16 * MiB, f"{(after - idle) / MiB:.0f} MiB still held"
    assert elapsed < 20, f"released after {elapsed:.1f} s"
    for sock in socks:
        # What the kernel had taken of the reply is there, then the end: the
        # rest of the reply was dropped with the connection.
        got = 0
        try:
            while chunk := sock.recv(MiB):
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < size
        sock.close()
    assert not probe.failures
    assert probe.p99 < 1.0, probe.summary()


def test_a_slow_reader_that_keeps_reading_is_not_cut(echo: ServerProcess) -> None:
    size = 4 * MiB
    with socket.create_connection(("127.0.0.1", echo.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % size + b"\x06" * size
        )
        got = b""
        started = time.monotonic()
        while len(got) < size:
            chunk = sock.recv(64 * 1024)
            assert chunk, "the server closed a connection that kept reading"
            got += chunk
            time.sleep(0.02)  # sleep-ok: a slow reader, 3 MB/s at most
        assert time.monotonic() - started > 1.0  # slower than send_timeout: it was at risk
    assert got.endswith(b"\x06" * 1024)


def test_trailers_count_against_the_header_limit(echo: ServerProcess) -> None:
    body = b"5\r\nhello\r\n0\r\n"
    head = (
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", echo.port)) as sock:
        sock.sendall(head + body + b"X-Small: 1\r\n\r\n")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"hello")
    trailers = b"".join(b"X-Trailer-%d: %s\r\n" % (i, b"t" * 100) for i in range(200))
    with Probe(echo.port) as probe, socket.create_connection(("127.0.0.1", echo.port)) as sock:
        sock.sendall(head + body + trailers + b"\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert reply.endswith(b"request headers and trailers are over the limit of 16384 bytes")
    assert b"connection: close" in reply
    assert not probe.failures


def test_a_request_with_upgrade_h2c_is_served_as_http_1_1_with_its_body(
    echo: ServerProcess,
) -> None:
    upgrade = (
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    )
    chunked = (
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    after = (
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 4\r\n\r\nnext"
    )
    with socket.create_connection(("127.0.0.1", echo.port)) as sock:
        sock.sendall(upgrade + chunked + after)  # all three on one connection, at once
        reply = b""
        sock.settimeout(10)
        while reply.count(b"HTTP/1.1 200 ") < 3:
            chunk = sock.recv(65536)
            assert chunk, reply
            reply += chunk
    answers = reply.split(b"HTTP/1.1 ")[1:]
    assert [a.split(b"\r\n\r\n", 1)[1] for a in answers] == [b"hello", b"abc", b"next"]
    assert b"101" not in reply


def test_curl_http2_with_a_body_gets_its_echo(echo: ServerProcess) -> None:
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("needs curl (apt-get install curl)")
    out = subprocess.run(
        ["curl", "-sS", "--http2", "-X", "PUT", "-H", "Content-Type: text/plain",
         "--data-binary", "over h2c upgrade", f"http://127.0.0.1:{echo.port}/echo",
         "-w", " %{http_version} %{http_code}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout == "over h2c upgrade 1.1 200"


def test_a_hung_def_handler_is_replaced_then_readiness_says_why() -> None:
    server = ServerProcess(
        [*SERVE, "tests.http.handlers:Queued", "--handler-timeout", "0.5",
         "--max-stuck-threads", "2"]
    )  # fmt: skip
    try:
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            for hung in range(3):
                with pytest.raises(Exception, match="did not answer within 0.5 s"):
                    client.send("/hang")
                # A replacement serves the next call (two replacements at most).
                if hung < 2:
                    assert client.send("/echo", hung) == hung
            ready = client._client.get(f"{server.url}/_dataserve/ready")
        assert ready.status_code == 503
        assert "every handler thread is stuck" in ready.text
        assert "max_stuck_threads 2" in ready.text
    finally:
        server.proc.kill()
        server.proc.wait(30)


def test_requests_queued_past_the_shutdown_grace_get_503_with_retry_after() -> None:
    server = ServerProcess(
        [*SERVE, "tests.http.handlers:Queued", "--shutdown-timeout", "1"]
    )  # one handler thread: the calls queue

    async def main() -> list[tuple[int, str, str | None]]:
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
            http = client._client
            first = asyncio.create_task(http.put(f"{server.url}/slow", json=0.5))
            rest = [
                asyncio.create_task(http.put(f"{server.url}/slow", json=0.5)) for _ in range(20)
            ]
            await first
            # Calls have reached the server and wait for the one thread
            # (each look at the figures is a round trip: no sleeping).
            deadline = time.monotonic() + 30
            while True:
                stats = (await http.get(f"{server.url}/_dataserve/stats")).json()
                if stats["handler_threads"]["queued"] >= 5:
                    break
                assert time.monotonic() < deadline, f"never 5 queued: {stats['handler_threads']}"
            server.proc.send_signal(signal.SIGTERM)
            replies = await asyncio.gather(*rest)
        return [(r.status_code, r.text, r.headers.get("retry-after")) for r in replies]

    replies = asyncio.run(main())
    assert server.proc.wait(30) == 0
    errors = server.error_output()
    statuses = [s for s, _, _ in replies]
    assert set(statuses) <= {200, 503}, statuses
    never_ran = [r for r in replies if r[0] == 503]
    assert never_ran, "the grace period let every queued call run"
    for _, text, _ in never_ran:
        assert text in (
            "the server shut down before the handler ran; send it again",
            "the server shut down before the handler answered",
        )
    assert any(retry == "1" for _, _, retry in never_ran)
    assert "Traceback" not in errors, errors


def test_a_second_ctrl_c_exits_at_once() -> None:
    server = ServerProcess([*SERVE, "tests.http.handlers:Queued", "--shutdown-timeout", "30"])
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"PUT /hang HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        # A round trip on the operations routes (the handler thread is taken):
        # /hang, sent before, has reached the server by now.
        assert httpx.get(f"{server.url}/_dataserve/health").status_code == 200
        server.proc.send_signal(signal.SIGINT)  # graceful: waits for /hang
        with pytest.raises(Exception):  # noqa: B017 - still running: any timeout
            server.proc.wait(1)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        server.proc.wait(10)
    assert time.monotonic() - started < 5
    assert "Traceback" not in server.error_output(), server.error_output()


def test_a_tls_handshake_that_never_comes_is_cut_at_the_deadline(pki: dict[str, str]) -> None:
    server = ServerProcess(
        [*SERVE, "tests.http.handlers:Echo", "--tls-cert", pki["cert"], "--tls-key",
         pki["key"], "--handshake-timeout", "1"]
    )  # fmt: skip
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as silent:
            silent.settimeout(20)
            started = time.monotonic()
            assert silent.recv(100) == b""  # closed by the server, no handshake
            waited = time.monotonic() - started
        assert 0.9 <= waited < 5, f"closed after {waited:.1f} s"
        context = ssl.create_default_context(cafile=pki["ca"])
        client = HTTPDataClient(server.port, "https://127.0.0.1:", ca_file=pki["ca"])
        with client:
            assert client.send("/echo", "over TLS") == "over TLS"
        with socket.create_connection(("127.0.0.1", server.port)) as raw:  # noqa: SIM117
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        assert server.stop() == 0
