"""The README's Python examples run, so they cannot drift from the code."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

from dataserve.http.server import bind_socket
from tests.conftest import ROOT, ServerProcess, run_python

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def block(start: str) -> str:
    return next(b for b in BLOCKS if b.lstrip().startswith(start) or start in b)


def free_port() -> int:
    with bind_socket("127.0.0.1", 0) as sock:
        return int(sock.getsockname()[1])


def test_every_block_compiles() -> None:
    assert len(BLOCKS) >= 6
    for i, code in enumerate(BLOCKS):
        compile(code, f"README block {i}", "exec")


def _serve(code: str, tmp_path: Path) -> ServerProcess:
    path = tmp_path / "server.py"
    path.write_text(code)
    return ServerProcess([sys.executable, str(path)])


def test_first_screen_server_and_clients(tmp_path: Path) -> None:
    port = str(free_port())
    server = _serve(BLOCKS[0].replace("5001", port), tmp_path)
    try:
        client = run_python(BLOCKS[1].replace("port=5001", f"port={port}"))
        assert client.returncode == 0, client.stderr
        async_client = run_python(block("AsyncHTTPDataClient").replace("5001", port))
        assert async_client.returncode == 0, async_client.stderr
        assert async_client.stdout.strip() == str([[1, 2, 3, i] for i in range(10)])
    finally:
        assert server.stop() == 0


def test_router_example(tmp_path: Path) -> None:
    port = str(free_port())
    server = _serve(block("router = Router()").replace("5001", port), tmp_path)
    try:
        r = httpx.put(f"http://127.0.0.1:{port}/scale/3", json=[1, 2])
        assert r.json() == [3.0, 6.0]
    finally:
        assert server.stop() == 0


def test_callback_example() -> None:
    try:
        bind_socket("127.0.0.1", 12345).close()
    except OSError:
        pytest.skip("port 12345, which the example uses, is taken")
    result = run_python(block("httpserver_registercallback"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "200 hello Ada: POST /greet, 3 bytes\n"


def test_raw_tcp_example() -> None:
    result = run_python(block("BackgroundRawServer"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[8, 10, 12]\n"
