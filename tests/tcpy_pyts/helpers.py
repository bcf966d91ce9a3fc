"""Shared helpers for the tcpy and pyts end-to-end tests: raw sockets and subprocesses."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

TIMEOUT = 10.0
DOCS = ROOT / "docs"


def doc_python_blocks(name: str) -> list[str]:
    """The ```python blocks of ``docs/<name>``, so the tests run what the docs show."""
    text = (DOCS / name).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections, for as long as the block runs.

    The port is bound, so nothing else can take it meanwhile, but not
    listening, so connecting to it is refused. (A port found free and then
    released could be taken by another program before the test connects.)
    """
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def raw_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def recv_until_eof(sock: socket.socket) -> bytes:
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


def write_module(directory: Path, name: str, code: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    return path


class Process:
    """A Python script in a subprocess, its stdout read line by line (no sleeps)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=str(cwd),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"the process ended without output: {err}")
        return line

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
