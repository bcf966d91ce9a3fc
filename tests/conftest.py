"""Shared fixtures: real servers on ephemeral loopback ports, original libraries.

Servers bind port 0 and the test reads the port back; nothing sleeps to
synchronise: in-process servers return from ``start()`` once they accept
connections, and subprocess servers print their address when they listen.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from dataserve.http.server import BackgroundServer

ROOT = Path(__file__).resolve().parent.parent
INTEROP_DIR = ROOT / ".interop"


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(app) -> BackgroundServer`` started on 127.0.0.1:0; stopped after the test."""
    started: list[BackgroundServer] = []

    def start(app: Any, **kwargs: Any) -> BackgroundServer:
        server = BackgroundServer(app, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(timeout=30)


def missing(what: str) -> None:
    """Skip a test that needs ``what``, saying how to get it; in CI (``CI=true``)
    fail instead, because ``.ci/run`` prepares everything and an absence there
    is a broken setup. The tests themselves never install anything system-wide."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI prepares it: see .ci/run)")
    pytest.skip(what)


#: Debian package of each command-line tool a test drives.
TOOL_PACKAGES = {
    "curl": "curl",
    "nginx": "nginx",
    "slowhttptest": "slowhttptest",
    "wrk": "wrk",
}


def need_tool(command: str) -> str:
    """The path of ``command``; the test skips (CI: fails) when it is not installed."""
    path = shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        missing(f"{command} is not installed (apt-get install {TOOL_PACKAGES[command]})")
    assert path is not None
    return path


def interop_target(name: str, *requirements: str) -> Path:
    """``pip install --target`` the original libraries once; reuse the folder after.

    Each original lives in its own folder of the checkout (``.interop/``) and
    runs in a subprocess with ``PYTHONPATH`` set to it, so it never shadows
    this project's packages. Offline, the test skips, saying how to get them.
    """
    target = INTEROP_DIR / name
    marker = target / ".installed"
    if marker.exists():
        return target
    INTEROP_DIR.mkdir(parents=True, exist_ok=True)
    # One fetch at a time: parallel test workers (pytest -n) wait for it.
    with open(INTEROP_DIR / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            _fetch(target, name, requirements)
    return target


def _fetch(target: Path, name: str, requirements: tuple[str, ...]) -> None:
    marker = target / ".installed"
    if target.exists():
        shutil.rmtree(target)  # what an interrupted or failed fetch left
    target.mkdir(parents=True)
    # Bounded: offline, pip would otherwise retry for minutes.
    fetched = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--retries",
            "1",
            "--timeout",
            "15",
            "--target",
            str(target),
            *requirements,
        ],
        capture_output=True,
        text=True,
    )
    if fetched.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        last = (fetched.stderr.strip().splitlines() or ["no output"])[-1]
        missing(
            f"cannot fetch the original {' '.join(requirements)} from PyPI ({last}); "
            f"run the tests once online, or `python -m tests.interop`, to put it in "
            f".interop/{name}"
        )
    marker.write_text("\n".join(requirements))


def run_python(
    code: str,
    *,
    pythonpath: Path | None = None,
    timeout: float = 60,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (from a clean cwd), output captured."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    else:
        env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=input,
        cwd=str(pythonpath or ROOT),
    )


def wait_until_refused(port: int, timeout: float = 60.0) -> None:
    """Poll until the listener on ``port`` is gone: connections are refused.

    A connection that lands in the listen backlog at the moment the server
    closes its listener is reset by the kernel instead; that is a refusal too.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except (ConnectionRefusedError, ConnectionResetError):
            return
        time.sleep(0.01)  # sleep-ok: bounded wait for the listener to close
    raise AssertionError(f"the listener on port {port} still accepts")


class ServerProcess:
    """A server in a subprocess; ``url``/``port`` come from its first output line."""

    ADDRESS = re.compile(r"(?:http://)?(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]|localhost):(\d+)")

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        # stderr goes to a file: a pipe nobody reads fills up (64 KiB of
        # logged tracebacks) and blocks the server mid-test.
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=str(cwd or ROOT),
        )
        self.lines: list[str] = []
        self.port = 0
        self.uds = ""  # the Unix socket it serves, when it says "on unix:PATH"
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = self.ADDRESS.search(line)
            if m:
                self.port = int(m.group(2))
                break
            u = re.search(r" on unix:(\S+?)\.? ", line)
            if u:
                self.uds = u.group(1)
                break
        if not self.port and not self.uds:
            raise RuntimeError(f"server did not start: {''.join(self.lines)}{self.error_output()}")
        # keep draining stdout for the same reason
        self._new_line = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    @classmethod
    def script(cls, folder: Path, source: str, *args: str) -> ServerProcess:
        """Write ``source`` to ``folder/server.py`` and run it with ``args``, importing
        this checkout's packages (not whichever ones are installed)."""
        path = folder / "server.py"
        path.write_text(source)
        return cls([sys.executable, str(path), *args], env={"PYTHONPATH": str(ROOT)})

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append(line)
                self._new_line.notify_all()
        with self._new_line:
            self.lines.append("")  # EOF
            self._new_line.notify_all()

    def line(self, index: int, timeout: float = 30) -> str:
        """Stdout line ``index`` (0 is the address line), waiting for it; "" at EOF."""
        with self._new_line:
            self._new_line.wait_for(
                lambda: len(self.lines) > index or self.lines[-1:] == [""], timeout
            )
            return self.lines[index] if len(self.lines) > index else ""

    def error_output(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def server_process() -> Iterator[Any]:
    """``server_process([argv...]) -> ServerProcess``; terminated after the test."""
    procs: list[ServerProcess] = []

    def start(args: list[str], **kwargs: Any) -> ServerProcess:
        proc = ServerProcess(args, **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A private CA (trustme) and PEM files: a server certificate for
    127.0.0.1/localhost and a client certificate, both signed by it."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.test")
    paths = {
        "ca": d / "ca.pem",
        "cert": d / "server.pem",
        "key": d / "server.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    return {k: str(v) for k, v in paths.items()}
