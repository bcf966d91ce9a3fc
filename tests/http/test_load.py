"""Large payloads and many clients, against a server in its own process."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import Iterator

import pytest

from dataserve import AsyncHTTPDataClient, HTTPDataClient
from tests.conftest import ServerProcess

# Load and big payloads: minutes of CPU on a small machine; CI runs them.
pytestmark = pytest.mark.slow

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def echo_process() -> Iterator[ServerProcess]:
    server = ServerProcess(
        [sys.executable, "-m", "dataserve", "serve", "tests.http.handlers:Echo", "--port", "0"]
    )
    yield server
    assert server.stop() == 0


def test_100_mib_round_trip_with_bounded_server_memory(echo_process: ServerProcess) -> None:
    payload = os.urandom(100 * MiB)
    with HTTPDataClient(echo_process.port, "http://127.0.0.1:") as client:
        reply = client.send("/echo", payload)
        assert len(reply) == len(payload)
        assert hashlib.sha256(reply).digest() == hashlib.sha256(payload).digest()
        del reply
        peak = client.send("/peak-rss")
    # peak resident memory of the whole server process, baseline included
    assert peak < 4 * len(payload), f"server peak RSS {peak / MiB:.0f} MiB"


def test_200_concurrent_clients_without_a_failure(echo_process: ServerProcess) -> None:
    async def one_client(i: int) -> list[object]:
        async with AsyncHTTPDataClient(echo_process.port, "http://127.0.0.1:") as client:
            return [await client.send("/echo", [i, j]) for j in range(5)]

    async def main() -> list[list[object]]:
        return list(await asyncio.gather(*(one_client(i) for i in range(200))))

    results = asyncio.run(main())
    assert results == [[[i, j] for j in range(5)] for i in range(200)]
