"""The HTTP data path against a real ``dataserve serve``: one buffer per body.

A body with a ``Content-Length`` is read into one buffer of its size and
handed to the handler as the one ``bytes`` object; the echoed reply is that
same object, written without a copy. So the server's peak memory above idle
is about the payload, and whatever a client leaves behind (an upload or a
download cut short) is given back.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataserve import HTTPDataClient
from tests.conftest import ServerProcess

MiB = 1 << 20

pytestmark = pytest.mark.slow


def status(pid: int) -> dict[str, int]:
    """The kernel's memory counters of process ``pid``, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid: int) -> None:
    """Start a new high-water mark (VmHWM) at the current resident size."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[ServerProcess, int]]:
    # One buffer per body, each given back when done: reusing them
    # (--buffer-retain) is test_buffer_reuse's, with what it keeps and for how long.
    server = ServerProcess(
        [sys.executable, "-m", "dataserve", "serve", "tests.http.handlers:Echo", "--port", "0",
         "--buffer-retain", "0"]
    )  # fmt: skip
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        pid = int(client.send("/pid"))
    yield server, pid
    assert server.stop() == 0


def settled_rss(port: int, pid: int, at_most: int, within: float = 20.0) -> int:
    """The server's RSS once it is at most ``at_most``, or after ``within``
    seconds (each poll is a round trip to the server)."""
    deadline = time.monotonic() + within
    with HTTPDataClient(port, "http://127.0.0.1:") as client:
        while True:
            client.send("/pid")
            rss = status(pid)["VmRSS"]
            if rss <= at_most or time.monotonic() > deadline:
                return rss


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (apt-get install curl)")
@pytest.mark.parametrize("size", [64 * MiB], ids=["64MiB"])
def test_an_echoed_body_costs_the_server_at_most_1_25_times_its_size(
    echo: tuple[ServerProcess, int], tmp_path: Path, size: int
) -> None:
    server, pid = echo
    sent = tmp_path / "payload.bin"
    with open(sent, "wb") as f:
        for i in range(size // MiB):
            f.write(bytes([i % 251]) * MiB)
    got = tmp_path / "reply.bin"
    idle = settled_rss(server.port, pid, status(pid)["VmRSS"])
    reset_peak(pid)
    out = subprocess.run(
        ["curl", "-sS", "-o", str(got), "-w", "%{http_code}", "-T", str(sent), "-H", "Expect:",
         "-H", "Content-Type: application/octet-stream", f"http://127.0.0.1:{server.port}/echo"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    peak = status(pid)["VmHWM"]
    assert out.stdout == "200"
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(sent.read_bytes()).digest()
    assert peak - idle <= 1.25 * size, f"{(peak - idle) / size:.2f}x the payload above idle"


def test_an_upload_cut_short_leaves_no_buffer_behind(echo: tuple[ServerProcess, int]) -> None:
    server, pid = echo
    idle = settled_rss(server.port, pid, status(pid)["VmRSS"])
    announced, sent = 512 * MiB, 128 * MiB
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % announced
        )
        block = b"\x01" * MiB
        for _ in range(sent // MiB):
            sock.sendall(block)
        # The server has taken what was sent (its RSS grew by about that much)...
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            for _ in range(2000):
                client.send("/pid")
                if status(pid)["VmRSS"] >= idle + sent * 3 // 4:
                    break
        assert status(pid)["VmRSS"] >= idle + sent * 3 // 4
    # ...and gives it back once the client is gone.
    after = settled_rss(server.port, pid, idle + 16 * MiB)
    assert after <= idle + 16 * MiB, f"{(after - idle) / MiB:.0f} MiB left behind"


def test_a_download_cut_short_leaves_no_buffer_behind(echo: tuple[ServerProcess, int]) -> None:
    server, pid = echo
    idle = settled_rss(server.port, pid, status(pid)["VmRSS"])
    size = 128 * MiB
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % size
        )
        block = b"\x02" * MiB
        for _ in range(size // MiB):
            sock.sendall(block)
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 ")
        # The reply is being sent; the client reads a little of it and leaves.
        sock.recv(65536)
    after = settled_rss(server.port, pid, idle + 16 * MiB)
    assert after <= idle + 16 * MiB, f"{(after - idle) / MiB:.0f} MiB left behind"


def test_a_chunked_upload_over_the_limit_gets_413_at_once() -> None:
    server = ServerProcess(
        [sys.executable, "-m", "dataserve", "serve", "tests.http.handlers:Echo", "--port", "0",
         "--max-body-size", "1M"]
    )  # fmt: skip
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"\x03" * 64 * 1024)
            sock.settimeout(10)
            sent = 0
            reply = b""
            # The answer comes once the limit is crossed: well before 64 MiB.
            while sent < 64 * MiB:
                try:
                    sock.sendall(chunk)
                except OSError:
                    break  # the server has answered and stopped reading
                sent += 64 * 1024
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    reply = sock.recv(65536)
                sock.setblocking(True)
                sock.settimeout(10)
                if reply:
                    break
            while b"\r\n\r\n" not in reply:
                more = sock.recv(65536)
                if not more:
                    break
                reply += more
        assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]
        assert b"connection: close" in reply
        assert b"request body is over the limit of 1048576 bytes" in reply
        assert sent < 8 * MiB, f"{sent / MiB:.0f} MiB sent before the answer"
    finally:
        assert server.stop() == 0


CLIENT_ROUND_TRIP = """
import resource, sys
from dataserve import AsyncHTTPDataClient, HTTPDataClient
import asyncio

port, size, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
payload = bytes(range(256)) * (size // 256)
with HTTPDataClient(port, "http://127.0.0.1:") as client:
    client.send("/pid")  # the connection and the imports, before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if kind == "sync":
    with HTTPDataClient(port, "http://127.0.0.1:") as client:
        reply = client.send("/echo", payload)
else:
    # main() keeps the reply rather than returning it: on Python 3.11,
    # asyncio.run() checks its SIGINT handler through signal.getsignal(), whose
    # enum lookup formats the handler's repr, the main task and its result
    # included, which would cost four times a returned 64 MiB bytes.
    out = []
    async def main():
        async with AsyncHTTPDataClient(port, "http://127.0.0.1:") as client:
            out.append(await client.send("/echo", payload))
    asyncio.run(main())
    reply = out[0]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
assert reply == payload
print(peak - before)
"""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_large_reply_costs_the_client_about_its_size(
    echo: tuple[ServerProcess, int], kind: str
) -> None:
    """The reply is read into one buffer of its announced length, not joined
    from its network reads at the end (which held it twice)."""
    server, _ = echo
    size = 64 * MiB
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_ROUND_TRIP, str(server.port), str(size), kind],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    above = int(out.stdout)
    # the reply itself (1x) and the pieces of the upload in flight
    assert above <= 1.25 * size, f"{above / size:.2f}x the payload above the baseline"
