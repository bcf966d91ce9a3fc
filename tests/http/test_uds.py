"""HTTP over a Unix domain socket: ``dataserve serve --uds PATH``, as uvicorn's ``--uds``."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dataserve import AsyncHTTPDataClient, HTTPDataClient
from tests.conftest import ServerProcess

SERVE = [sys.executable, "-m", "dataserve", "serve", "tests.http.handlers:Echo"]


def test_serve_uds_answers_both_clients_and_curl(tmp_path: Path) -> None:
    path = str(tmp_path / "ds.sock")
    server = ServerProcess([*SERVE, "--uds", path])
    try:
        assert server.uds == path
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        with HTTPDataClient(uds=path) as client:
            assert client.send("/echo", [1, 2]) == [1, 2]
            assert client.send("/echo", b"\x00" * 100_000) == b"\x00" * 100_000

        async def main() -> list[object]:
            async with AsyncHTTPDataClient(uds=path) as client:
                return list(await asyncio.gather(*(client.send("/echo", i) for i in range(20))))

        assert asyncio.run(main()) == list(range(20))
        if shutil.which("curl"):
            out = subprocess.run(
                ["curl", "-sS", "--unix-socket", path, "-X", "PUT", "-H",
                 "Content-Type: text/plain", "--data-binary", "over a socket file",
                 "http://localhost/echo"],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            assert out.stdout == "over a socket file"
    finally:
        assert server.stop() == 0
    assert not os.path.exists(path), "the socket file is removed at exit"


def test_a_stale_socket_file_is_replaced_and_any_other_file_refused(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    old = socket.socket(socket.AF_UNIX)
    old.bind(str(stale))
    old.close()  # a server that died without removing it
    server = ServerProcess([*SERVE, "--uds", str(stale)])
    try:
        with HTTPDataClient(uds=str(stale)) as client:
            assert client.send("/echo", "fresh") == "fresh"
    finally:
        assert server.stop() == 0
    regular = tmp_path / "notes.txt"
    regular.write_text("keep me")
    done = subprocess.run(
        [*SERVE, "--uds", str(regular)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "exists and is not a socket" in done.stderr
    assert regular.read_text() == "keep me"


@pytest.mark.slow
def test_workers_share_one_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "workers.sock")
    server = ServerProcess([*SERVE, "--uds", path, "--workers", "2"])
    try:
        pids = set()
        for _ in range(40):
            with HTTPDataClient(uds=path) as client:  # a new connection each time
                pids.add(client.send("/pid"))
        assert len(pids) == 2
    finally:
        assert server.stop() == 0
