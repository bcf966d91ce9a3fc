"""The README's examples run, Python and shell alike, so they cannot drift from the code."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, ServerProcess, need_tool, run_python

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
SHELL = re.findall(r"```(?:bash|sh)\n(.*?)```", README, re.S)


def block(start: str) -> str:
    return next(b for b in BLOCKS if b.lstrip().startswith(start) or start in b)


def test_every_block_compiles() -> None:
    assert len(BLOCKS) >= 6
    for i, code in enumerate(BLOCKS):
        compile(code, f"README block {i}", "exec")


def _serve(code: str, tmp_path: Path) -> ServerProcess:
    path = tmp_path / "server.py"
    path.write_text(code)
    return ServerProcess([sys.executable, str(path)])


def test_first_screen_server_and_clients(tmp_path: Path) -> None:
    # port 0: the server binds a free port and prints it, which ServerProcess reads back
    server = _serve(BLOCKS[0].replace("5001", "0"), tmp_path)
    port = str(server.port)
    try:
        client = run_python(BLOCKS[1].replace("port=5001", f"port={port}"))
        assert client.returncode == 0, client.stderr
        assert client.stdout == "[1, 2, 3, 4, 5, 6]\n2\n"  # the block prints its results
        async_client = run_python(block("AsyncHTTPDataClient").replace("5001", port))
        assert async_client.returncode == 0, async_client.stderr
        assert async_client.stdout.strip() == str([[1, 2, 3, i] for i in range(10)])
    finally:
        assert server.stop() == 0


def test_router_example(tmp_path: Path) -> None:
    server = _serve(block("router = Router()").replace("5001", "0"), tmp_path)
    port = str(server.port)
    try:
        r = httpx.put(f"http://127.0.0.1:{port}/scale/3", json=[1, 2])
        assert r.json() == [3.0, 6.0]
    finally:
        assert server.stop() == 0


def test_callback_example() -> None:
    # The example binds the fixed port 12345, as the API's users write it; if
    # another process holds that port the example cannot run here (checking
    # beforehand would only race with that process).
    result = run_python(block("httpserver_registercallback"))
    if result.returncode != 0 and "Address already in use" in result.stderr:
        pytest.skip(f"port 12345, which the example uses, is taken: {result.stderr[-200:]}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "200 hello Ada: POST /greet, 3 bytes\n"


def test_raw_tcp_example() -> None:
    result = run_python(block("BackgroundRawServer"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[8, 10, 12]\n"


def shell_lines() -> list[str]:
    """Every command of the README's shell blocks, continuation lines joined."""
    lines = []
    for block in SHELL:
        commands = []
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
        if any(c.startswith("docker ") for c in commands):
            # the whole block talks to containers (compose's nginx on 8080)
            commands = [f"docker-block: {c}" for c in commands]
        lines.extend(commands)
    return lines


# Commands the tests do not run here, and why: installing (the suite runs
# installed), Docker (no engine in the tests; tests/deploy checks the image,
# compose.yaml and nginx), and the servers the other lines talk to.
NOT_RUN = {
    "pip install": "installs",
    "docker ": "needs a Docker engine",
    "docker-block: ": "talks to containers: needs a Docker engine",
    "dataserve serve": "the server itself: started by the test",
}


def test_every_shell_line_works_against_dataserve_serve(tmp_path: Path) -> None:
    need_tool("curl")
    ran = []
    server = ServerProcess([sys.executable, "-m", "dataserve", "serve", "--port", "0"])
    try:
        bindir = Path(sys.executable).parent  # `dataserve` of this environment
        env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
        for line in shell_lines():
            if any(line.startswith(prefix) for prefix in NOT_RUN):
                continue
            command = line.replace("127.0.0.1:5001", f"127.0.0.1:{server.port}")
            out = subprocess.run(
                ["bash", "-o", "pipefail", "-ec", command],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, (line, out.stdout, out.stderr)
            ran.append((line, out.stdout))
    finally:
        assert server.stop() == 0
    outputs = dict(ran)

    def output(start: str, end: str) -> str:
        (found,) = [out for line, out in outputs.items() if line.startswith(start) and end in line]
        return found

    assert output("curl", "/xdata") == "[1,2,3,4,5,6]"
    assert output("curl", "'hello' http://127.0.0.1:5001/echo") == "hello"
    assert output("dataserve send", "/xdata") == "[1, 2, 3, 4, 5, 6]\n"
    assert any("cmp payload.bin reply.bin" in line for line, _ in ran)
    assert len(ran) >= 5


def test_every_server_example_waits_for_main() -> None:
    """Importing an example (``dataserve serve module:Handler``) must not start its server."""
    starters = {"run_http_server", "listen", "startServer", "serve", "start"}
    for code in BLOCKS:
        for node in ast.parse(code).body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                func = node.value.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                assert name not in starters, ast.unparse(node)
