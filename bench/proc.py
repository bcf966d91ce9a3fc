"""Server processes: started pinned, address read from their first lines, memory read from /proc."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .env import ROOT, NotMeasured, Pinning

_ADDRESS = re.compile(r"(?:https?://|tcp://)?(127\.0\.0\.1|localhost|0\.0\.0\.0):(\d+)")
# "... on unix:/path/to.sock. Press ..." (dataserve serve --uds, rawproto's uds=),
# or pyzmq's "ipc:///path/to.sock"
_UNIX = re.compile(r"(?:unix:|ipc://)(\S+?)\.?(?:\s|$)")
LOG_DIR = ROOT / ".bench-env" / "logs"


class Server:
    """A server in a subprocess pinned to the server CPU.

    It must print its address (``127.0.0.1:PORT``) on stdout once it listens;
    the rest of its output goes to a log file under ``.bench-env/logs``.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        pin: Pinning,
        *,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        pinned: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        self.name = name
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        full = pin.server_argv(list(argv)) if pinned else pin.free_argv(list(argv))
        self.proc = subprocess.Popen(
            full,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(cwd),
            text=True,
        )
        #: The Unix socket it listens on, if it said ``unix:PATH`` instead of a port.
        self.uds = ""
        self.port = self._read_port(start_timeout)
        self.host = "127.0.0.1"

    def _read_port(self, timeout: float) -> int:
        found: list[int] = []
        seen: list[str] = []
        ready = threading.Event()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:
            # Read the address, then keep draining so a chatty server never blocks.
            for line in stdout:
                if not found:
                    seen.append(line)
                    m = _ADDRESS.search(line)
                    u = _UNIX.search(line)
                    if m:
                        found.append(int(m.group(2)))
                        ready.set()
                    elif u:
                        self.uds = u.group(1)
                        found.append(0)
                        ready.set()
                else:
                    self._log.write(line)
            ready.set()

        threading.Thread(target=pump, name=f"{self.name}-stdout", daemon=True).start()
        ready.wait(timeout)
        if not found:
            self.stop()
            detail = "".join(seen).strip() or self._tail()
            raise NotMeasured(f"{self.name} did not start: {detail[-300:] or 'no output'}")
        return found[0]

    def _tail(self) -> str:
        try:
            return self.log_path.read_text()[-300:]
        except OSError:
            return ""

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, or ``unix:PATH`` for a Unix socket."""
        if self.uds:
            return f"unix:{self.uds}"
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        """The server and all its descendants (``--workers`` forks, taskset's exec)."""
        return [self.proc.pid, *descendants(self.proc.pid)]

    def rss(self) -> int:
        """Resident memory of the server and its descendants, in bytes."""
        return sum(status_bytes(pid, "VmRSS") for pid in self.pids())

    def peak_rss(self) -> int:
        """Peak resident memory since start or the last ``reset_peak``, in bytes."""
        return sum(status_bytes(pid, "VmHWM") for pid in self.pids())

    def reset_peak(self) -> bool:
        """Reset the kernel's peak-RSS mark (``clear_refs`` 5); False where refused."""
        ok = True
        for pid in self.pids():
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                ok = False
        return ok

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for child in children:
                found.append(int(child))
                todo.append(int(child))
    return found


def status_bytes(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` in bytes (0 once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class ServerGroup:
    """Several servers that are stopped together, whatever happens."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def add(self, server: Server) -> Server:
        self.servers.append(server)
        return server

    def __enter__(self) -> ServerGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()


def wait_until(predicate: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` (for process state, not tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (threads included), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick
