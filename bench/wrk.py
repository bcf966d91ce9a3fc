"""wrk, the load generator of the HTTP scenarios: run it pinned, read its summary."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .env import Env, Pinning

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)


@dataclass
class WrkResult:
    requests_per_s: float
    requests: int
    p50: float | None  # seconds
    p99: float | None
    errors: int  # socket errors (connect, read, write, timeout)
    non_2xx: int
    output: str

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.non_2xx == 0 and self.requests > 0

    def problems(self) -> str:
        parts = []
        if self.non_2xx:
            parts.append(f"{self.non_2xx} non-2xx answers")
        if self.errors:
            parts.append(f"{self.errors} socket errors")
        if not self.requests:
            parts.append("no requests completed")
        return ", ".join(parts)


def lua_script(directory: Path, method: str, body: bytes, content_type: str) -> Path:
    """A wrk script that sends ``method`` with ``body`` on every request."""
    path = directory / f"wrk-{method.lower()}-{abs(hash((body, content_type)))}.lua"
    path.write_text(
        f"wrk.method = {json.dumps(method)}\n"
        f"wrk.body = {json.dumps(body.decode('latin-1'))}\n"
        f'wrk.headers["Content-Type"] = {json.dumps(content_type)}\n'
    )
    return path


def run_wrk(
    env: Env,
    pin: Pinning,
    url: str,
    script: Path,
    *,
    connections: int,
    duration: float,
    threads: int = 1,
    pinned: bool = True,
) -> WrkResult:
    wrk = env.tool("wrk")
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",  # wrk takes whole seconds only
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    argv = pin.load_argv(argv) if pinned else pin.free_argv(argv)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    return parse_wrk(proc.stdout + proc.stderr)


def parse_wrk(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors = sum(int(x) for x in sock.groups())
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    pct = {
        float(m.group(1)): float(m.group(2)) * _UNITS[m.group(3)] for m in _PERCENTILE.finditer(out)
    }
    return WrkResult(
        requests_per_s=float(rps.group(1)) if rps else 0.0,
        requests=int(total.group(1)) if total else 0,
        p50=pct.get(50.0),
        p99=pct.get(99.0),
        errors=errors,
        non_2xx=int(non.group(1)) if non else 0,
        output=out,
    )
