"""The ``rawproto`` command: every framing served, its own flags, one-line errors."""

from __future__ import annotations

import importlib.metadata
import queue
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dataserve.core.net import bind_socket
from rawproto import RawDataClient
from rawproto.tcpy import TCPClient
from rawproto.tinyproto import TinyProtoClient, TinyProtoConnection
from tests.conftest import ROOT, ServerProcess

RAWPROTO = [sys.executable, "-m", "rawproto"]
THREADS_TOKEN = ["--handler-threads", "2", "--token", "s3cret"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RAWPROTO, *args], capture_output=True, text=True, timeout=60, cwd=str(cwd)
    )


def stop(server: ServerProcess) -> None:
    assert server.stop() == 0, server.error_output()
    assert "Traceback" not in server.error_output()


def test_native_serves_a_handler_with_its_threads_and_token() -> None:
    server = ServerProcess(
        [*RAWPROTO, "serve", "native", "tests.http.handlers:Echo", "--port", "0", *THREADS_TOKEN]
    )
    try:
        assert server.lines[0].startswith("Serving tests.http.handlers:Echo on tcp://127.0.0.1:")
        with RawDataClient(server.port, token="s3cret") as client:
            assert client.send("/echo", [1, 2]) == [1, 2]
    finally:
        stop(server)


def test_native_with_no_handler_serves_the_seed_example() -> None:
    server = ServerProcess([*RAWPROTO, "serve", "native", "--port", "0"])
    try:
        with RawDataClient(server.port) as client:
            assert client.send("/xdata", [4]) == [1, 2, 3, 4]
    finally:
        stop(server)


class Collect(TinyProtoConnection):
    """A client connection that hands what it receives to the test."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def transmission_received(self, msg: bytearray) -> None:
        self.messages.put(bytes(msg))


def connect(port: int) -> Collect:
    client = TinyProtoClient(Collect)
    conn = client.active_connections[client.connect_to("127.0.0.1", port)]
    assert isinstance(conn, Collect)
    return conn


def test_tinyproto_with_no_target_echoes() -> None:
    server = ServerProcess([*RAWPROTO, "serve", "tinyproto", "--port", "0"])
    try:
        assert server.lines[0].startswith("Serving tinyproto on tcp://127.0.0.1:")
        conn = connect(server.port)
        for message in (b"hello", b"\x00" * 100_000):
            conn.transmit(message)
            assert conn.messages.get(timeout=30) == message
        conn.shutdown = True
    finally:
        stop(server)


def test_tinyproto_serves_a_connection_class_from_a_module(tmp_path: Path) -> None:
    (tmp_path / "upper.py").write_text(
        textwrap.dedent(
            """
            from rawproto.tinyproto import TinyProtoConnection

            class Upper(TinyProtoConnection):
                def transmission_received(self, msg):
                    self.transmit(bytes(msg).upper())
            """
        )
    )
    server = ServerProcess(
        [*RAWPROTO, "serve", "tinyproto", "upper:Upper", "--port", "0"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    try:
        conn = connect(server.port)
        conn.transmit(b"shout")
        assert conn.messages.get(timeout=30) == b"SHOUT"
        conn.shutdown = True
    finally:
        stop(server)


BARRIER_SERVER = """
import threading

from rawproto.tcpy import TCPHandler, TCPServer

# Answers only once three calls wait here together: proof that three
# handlers run at once.
meeting = threading.Barrier(3, timeout=20)


class Meet(TCPHandler):
    def execute(self):
        meeting.wait()
        return self.success(met=True)


server = TCPServer(host="127.0.0.1", port=0, commands={"meet": Meet}, threads=1)
"""


@pytest.mark.parametrize("flag", ["--handler-threads", "--threads"])
def test_tcpy_threads_and_handler_threads_are_one_flag(tmp_path: Path, flag: str) -> None:
    (tmp_path / "meeting.py").write_text(BARRIER_SERVER)
    server = ServerProcess(
        [*RAWPROTO, "serve", "tcpy", "meeting:server", "--port", "0", flag, "3"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    try:
        with ThreadPoolExecutor(3) as pool:
            calls = [
                pool.submit(TCPClient("127.0.0.1", server.port, timeout=30).execute, "meet")
                for _ in range(3)
            ]
            assert [c.result() for c in calls] == [{"success": True, "met": True}] * 3
    finally:
        stop(server)


def _flags(framing: str) -> set[str]:
    out = run("serve", framing, "--help")
    assert out.returncode == 0, out.stderr
    return {word.rstrip(",") for word in out.stdout.split() if word.startswith("--")}


def test_each_framing_lists_only_its_own_flags() -> None:
    http_only = {"--max-header-size", "--header-timeout", "--keepalive-timeout", "--body-timeout"}
    flags = {framing: _flags(framing) for framing in ("native", "tinyproto", "tcpy", "pyts")}
    for framing, found in flags.items():
        assert not found & http_only, framing
        assert {"--host", "--port", "--tls-cert", "--max-connections"} <= found, framing
    assert "--token" in flags["native"]
    assert "--token" not in flags["tcpy"] | flags["pyts"] | flags["tinyproto"]
    assert "--max-body-size" in flags["pyts"]
    assert "--max-body-size" not in flags["tcpy"] | flags["native"] | flags["tinyproto"]
    assert "--max-container-len" in flags["tcpy"]
    assert "--max-container-len" not in flags["pyts"]
    # native payloads decode within the budget: msgpack container lengths and depth too
    assert {"--max-container-len", "--max-depth", "--max-structured-size"} <= flags["native"]
    assert "--max-pipelined" in flags["native"]
    assert "--handler-threads" not in flags["tinyproto"]  # a thread per connection
    for framing in ("native", "tcpy", "pyts"):
        assert {"--handler-threads", "--threads"} <= flags[framing]
    # a flag of another framing is refused, by name
    out = run("serve", "tcpy", "x:y", "--max-header-size", "1K")
    assert out.returncode == 2 and "--max-header-size" in out.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["serve", "native", "--port", "70000"], "--port"),
        (["serve", "tinyproto", "--port", "-1"], "--port"),
        (["serve", "tcpy", "x:y", "--threads", "0"], "--threads"),
        (["serve", "pyts", "x:y", "--max-body-size", "lots"], "--max-body-size"),
        (["serve", "native", "--idle-timeout", "0"], "--idle-timeout"),
        (["serve", "pyts"], "SERVER"),
        (["serve", "smoke-signals"], "smoke-signals"),
    ],
    ids=lambda a: " ".join(a),
)
def test_a_bad_flag_is_one_line_naming_it(args: list[str], flag: str) -> None:
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rawproto: error: ")
    assert flag in lines[0] and "Traceback" not in out.stderr


@pytest.mark.parametrize("framing", ["native", "tinyproto"])
def test_a_port_in_use_is_named_with_dataserves_exit_status(framing: str) -> None:
    with bind_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        out = run("serve", framing, "--port", str(port))
    assert out.returncode == 1  # as `dataserve serve` on a port in use
    assert out.stderr == (
        f"rawproto: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout == f"rawproto {importlib.metadata.version('dataserve')}\n"
