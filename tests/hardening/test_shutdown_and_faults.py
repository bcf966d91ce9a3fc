"""Graceful shutdown under load, and faults that must not leak.

The server runs in its own process so its memory and descriptors are its own.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from dataserve import AsyncHTTPDataClient, HandlerError, HTTPDataClient
from tests.conftest import ServerProcess, wait_until_refused

SERVE = [sys.executable, "-m", "dataserve", "serve", "tests.hardening.handlers:Slow", "--port", "0"]
MiB = 1024 * 1024


@pytest.mark.slow
def test_sigterm_lets_100_in_flight_requests_finish_and_exits_0() -> None:
    server = ServerProcess(SERVE)
    port = server.port

    async def main() -> list[object]:
        async with AsyncHTTPDataClient(port, "http://127.0.0.1:", max_connections=200) as client:
            tasks = [asyncio.create_task(client.send("/slow", 2.0)) for _ in range(100)]
            async with AsyncHTTPDataClient(port, "http://127.0.0.1:") as probe:
                while await probe.send("/inflight") < 100:
                    pass  # each probe is a round trip: no sleeping
            server.proc.send_signal(signal.SIGTERM)
            # new connections are refused once the server starts draining
            await asyncio.to_thread(wait_until_refused, port)
            return list(await asyncio.gather(*tasks, return_exceptions=True))

    results = asyncio.run(main())
    assert results == ["finished"] * 100
    assert server.proc.wait(30) == 0


@pytest.fixture(scope="module")
def victim() -> Iterator[ServerProcess]:
    server = ServerProcess(SERVE)
    yield server
    assert server.stop() == 0


def _usage(port: int) -> tuple[int, int]:
    with HTTPDataClient(port, "http://127.0.0.1:") as client:
        return int(client.send("/rss")), int(client.send("/fds"))


@pytest.mark.slow
def test_exception_storm_of_10000_raising_requests(victim: ServerProcess) -> None:
    async def storm(n: int) -> int:
        errors = 0
        async with AsyncHTTPDataClient(victim.port, "http://127.0.0.1:") as client:

            async def one() -> None:
                nonlocal errors
                try:
                    await client.send("/raise", 1)
                except HandlerError:
                    errors += 1

            for _ in range(n // 50):
                await asyncio.gather(*(one() for _ in range(50)))
        return errors

    assert asyncio.run(storm(1000)) == 1000  # warm up: allocator and logging settle
    rss, fds = _usage(victim.port)
    assert asyncio.run(storm(10_000)) == 10_000
    rss_after, fds_after = _usage(victim.port)
    assert rss_after - rss < 20 * MiB, f"grew {(rss_after - rss) / MiB:.1f} MiB"
    assert fds_after <= fds + 2


@pytest.mark.slow
def test_10000_aborted_uploads(victim: ServerProcess) -> None:
    head = (
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 1000000\r\n\r\n"
    )
    linger = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # close with RST

    def abort(n: int) -> None:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", victim.port), timeout=10)
            s.sendall(head + b"x" * 1000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.close()

    abort(1000)
    rss, fds = _usage(victim.port)
    abort(10_000)
    rss_after, fds_after = _usage(victim.port)
    assert rss_after - rss < 20 * MiB, f"grew {(rss_after - rss) / MiB:.1f} MiB"
    assert fds_after <= fds + 2
    r = httpx.put(f"{victim.url}/echo", content=b"ok", headers={"content-type": "text/plain"})
    assert r.text == "ok"


def test_a_client_process_killed_mid_upload(victim: ServerProcess) -> None:
    code = (
        "import socket, sys\n"
        f"s = socket.create_connection(('127.0.0.1', {victim.port}))\n"
        "s.sendall(b'PUT /echo HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 100000000\\r\\n\\r\\n')\n"
        "s.sendall(b'x' * 1000000)\n"
        "print('sent', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "sent\n"
    proc.kill()
    proc.wait()
    r = httpx.put(f"{victim.url}/echo", content=b"alive", headers={"content-type": "text/plain"})
    assert r.text == "alive"
