"""The bench environment: peers from PyPI, tools from Debian, CPU pinning, fds.

Peers are installed with ``pip install --target`` into ``.bench-env/<name>``,
one folder each, and run in subprocesses with ``PYTHONPATH`` pointing there:
the original dataserve 0.1.0 has our import name, and FastAPI brings its own
Starlette, so none of them may share a folder with this project's packages.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_DIR = ROOT / ".bench-env"

#: Each peer's folder and what pip installs into it.
PEERS: dict[str, tuple[str, ...]] = {
    "dataserve-0.1.0": ("dataserve==0.1.0", "requests"),
    "tinyproto-2.0.1": ("tinyproto==2.0.1",),
    "fastapi": ("fastapi",),
    "aiohttp": ("aiohttp",),
    "pyzmq": ("pyzmq",),
    "requests": ("requests",),
    "matplotlib": ("matplotlib",),
}

#: Debian package of each command-line tool the suite drives.
TOOLS = {"wrk": "wrk", "iperf3": "iperf3", "curl": "curl"}


class NotMeasured(Exception):
    """A figure cannot be measured here; the message says why."""


#: What a missing piece's reason says to do about it.
PREPARE = "`python -m bench --prepare` installs it"


class Env:
    """Installs peers and tools once per process (and once per folder on disk).

    With ``install=False`` nothing is installed: a missing peer or tool is
    ``NotMeasured``, with a reason that says how to get it. The tests' smoke
    run works that way, so that running the tests never changes the machine;
    ``python -m bench --prepare`` (which CI runs first) installs everything.
    """

    def __init__(self, root: Path = ENV_DIR, log: bool = True, install: bool = True) -> None:
        self.root = root
        self.log = log
        self.install = install
        self._lock = threading.Lock()
        self._failed: dict[str, str] = {}
        self._apt_updated = False

    # -- PyPI peers -------------------------------------------------------

    def prepare(self, names: Iterable[str]) -> None:
        """Install several peers at once (pip runs are mostly waiting on I/O)."""
        names = [n for n in names if not self._marker(n).exists()]
        if not names or not self.install:
            return
        with ThreadPoolExecutor(max_workers=4) as pool:
            for name in names:
                pool.submit(self._try_install, name)

    def peer(self, name: str) -> Path:
        """The folder holding peer ``name``, installed if needed; else NotMeasured."""
        target = self.root / name
        if self._marker(name).exists():
            return target
        if not self.install:
            raise NotMeasured(f"{' '.join(PEERS[name])} is not in {self.root.name}/ ({PREPARE})")
        self._try_install(name)
        if name in self._failed:
            raise NotMeasured(self._failed[name])
        return target

    def _marker(self, name: str) -> Path:
        return self.root / name / ".installed"

    def _try_install(self, name: str) -> None:
        requirements = PEERS[name]
        target = self.root / name
        marker = self._marker(name)
        if marker.exists() or name in self._failed:
            return
        if self.log:
            print(f"  installing {' '.join(requirements)} into {target}", flush=True)
        if target.exists():
            shutil.rmtree(target)  # a half-finished install from an interrupted run
        target.mkdir(parents=True)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(target),
                *requirements,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            with self._lock:
                self._failed[name] = f"pip could not install {' '.join(requirements)}: {last}"
            return
        marker.write_text("\n".join(requirements) + "\n")

    # -- Debian tools -----------------------------------------------------

    def tool(self, command: str) -> str:
        """The path of ``command``, installed with apt-get when missing."""
        found = shutil.which(command)
        if found:
            return found
        with self._lock:
            found = shutil.which(command)
            if found:
                return found
            if command in self._failed:
                raise NotMeasured(self._failed[command])
            if not self.install:
                raise NotMeasured(
                    f"{command} is not installed (apt-get install {TOOLS[command]}; {PREPARE})"
                )
            reason = self._apt_install(TOOLS[command])
            found = shutil.which(command)
            if not found:
                self._failed[command] = reason or f"{command} is not installed"
                raise NotMeasured(self._failed[command])
            return found

    def prepare_all(self) -> list[str]:
        """Install every peer and tool; the reasons of those that failed."""
        self.prepare(PEERS)
        for name in PEERS:
            if not self._marker(name).exists():
                self._try_install(name)
        problems = [self._failed[n] for n in PEERS if n in self._failed]
        for command in TOOLS:
            try:
                self.tool(command)
            except NotMeasured as exc:
                problems.append(str(exc))
        return problems

    def _apt_install(self, package: str) -> str:
        if not shutil.which("apt-get"):
            return f"{package} is missing and there is no apt-get to install it"
        sudo: list[str] = []
        if os.geteuid() != 0:
            if not shutil.which("sudo"):
                return f"{package} is missing; installing it needs root"
            sudo = ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if self.log:
            print(f"  installing {package} with apt-get", flush=True)
        if not self._apt_updated:
            subprocess.run([*sudo, "apt-get", "update", "-qq"], capture_output=True, env=env)
            self._apt_updated = True
        proc = subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", package],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return f"apt-get could not install {package}: {last}"
        return ""


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the servers and the load generators run on."""

    server: str | None
    load: str | None
    every: str | None = None  # all CPUs, for what must not be pinned

    @classmethod
    def detect(cls) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or not shutil.which("taskset"):
            return cls(None, None)
        return cls(str(cpus[0]), str(cpus[-1]), ",".join(str(c) for c in cpus))

    @property
    def active(self) -> bool:
        return self.server is not None

    def server_argv(self, argv: list[str]) -> list[str]:
        return ["taskset", "-c", self.server, *argv] if self.server else argv

    def load_argv(self, argv: list[str]) -> list[str]:
        return ["taskset", "-c", self.load, *argv] if self.load else argv

    def free_argv(self, argv: list[str]) -> list[str]:
        """Any CPU (the suite itself sits on the load CPU, and children inherit that)."""
        return ["taskset", "-c", self.every, *argv] if self.every else argv

    def describe(self) -> str:
        if not self.active:
            return "not pinned (taskset or a second CPU is missing)"
        return f"servers on CPU {self.server}, load generators on CPU {self.load} (taskset)"


def raise_fd_limit(wanted: int = 1 << 20) -> int:
    """Raise the soft open-files limit towards the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return new
    return soft


def python_env(*paths: Path | None) -> dict[str, str]:
    """The environment for a subprocess that imports from ``paths`` first."""
    env = dict(os.environ)
    parts = [str(p) for p in paths if p is not None]
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    else:
        env.pop("PYTHONPATH", None)
    return env
