"""The dataserve command: serve, send, and its one-line errors."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from dataserve.http.server import bind_socket
from tests.conftest import ServerProcess

DATASERVE = [sys.executable, "-m", "dataserve"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DATASERVE, *args], capture_output=True, text=True, timeout=60)


def test_serve_with_no_argument_serves_the_seed_example_and_prints_a_curl_line() -> None:
    server = ServerProcess([*DATASERVE, "serve", "--port", "0"])
    try:
        assert "dataserve.example:ExampleHandler" in server.lines[0]
        line = server.line(1)
        assert line.startswith("Try: curl -X PUT")
        assert f"http://127.0.0.1:{server.port}/xdata" in line
        r = httpx.put(f"{server.url}/xdata", json=[4, 5, 6])
        assert r.json() == [1, 2, 3, 4, 5, 6]
        # the curl line, run as printed
        out = subprocess.run(line[len("Try: ") :], shell=True, capture_output=True, timeout=30)
        assert out.stdout == b"[1,2,3,4,5,6]"
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0


def test_send_prints_the_decoded_reply() -> None:
    server = ServerProcess([*DATASERVE, "serve", "tests.http.handlers:Echo", "--port", "0"])
    try:
        out = run("send", server.url, "/echo", "--json", '{"a": [1, 2]}')
        assert out.returncode == 0 and out.stdout == '{"a": [1, 2]}\n'
        out = run("send", server.url, "/echo", "--text", "hello")
        assert out.stdout == "hello\n"
        out = run("send", server.url, "/echo")  # no payload: sent as '', as dataserve 0.1 did
        assert out.returncode == 0 and out.stdout == "\n"
        out = run("send", server.url, "/none", "--text", "x")  # Echo answers None
        assert out.returncode == 1
        assert out.stderr == "dataserve: error: 404: resource '/none' is not handled\n"
    finally:
        assert server.stop() == 0


def test_send_errors_are_one_line() -> None:
    with bind_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
    out = run("send", f"http://127.0.0.1:{port}", "/x")
    assert out.returncode == 1
    assert out.stderr.startswith(f"dataserve: error: cannot connect to http://127.0.0.1:{port}/x")
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:Handler", "cannot import module 'no_such_module_xyz'"),
        ("tests.http.handlers:Missing", "has no attribute 'Missing'"),
        ("tests.http.handlers:not_a_handler", "is a list, not a handler"),
        ("nocolon", "handler must be given as MODULE:ATTR"),
    ],
)
def test_bad_handler_spec_exits_with_one_clear_line(spec: str, message: str) -> None:
    out = run("serve", spec, "--port", "0")
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_port_in_use_exits_with_one_clear_line() -> None:
    with bind_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        out = run("serve", "--port", str(port))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"dataserve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_bad_limit_flag_is_refused_by_argparse() -> None:
    out = run("serve", "--max-body-size", "lots")
    assert out.returncode == 2 and "--max-body-size" in out.stderr


def test_workers_serve_from_several_processes() -> None:
    server = ServerProcess(
        [*DATASERVE, "serve", "tests.http.handlers:Echo", "--port", "0", "--workers", "2"]
    )
    try:
        pids = set()
        for _ in range(200):
            with httpx.Client() as client:  # a new connection each time
                pids.add(client.put(f"{server.url}/pid").json())
            if len(pids) == 2:
                break
        assert len(pids) == 2
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0


def test_python_dash_m_help() -> None:
    out = run("--help")
    assert out.returncode == 0 and "serve" in out.stdout and "send" in out.stdout
