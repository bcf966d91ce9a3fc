"""Raw TCP servers and clients for the scenarios, each in its own pinned process."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .context import Context
from .env import ROOT, NotMeasured, python_env
from .http import PEERS_DIR, ours, peer
from .proc import Server, ServerGroup, cpu_seconds
from .results import Metric, Section, Table


def require(module: str, *names: str) -> None:
    """NotMeasured unless ``module`` imports and has ``names`` (a part still being built)."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise NotMeasured(f"{module} is not available: {exc}") from None
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise NotMeasured(f"{module} has no {', '.join(missing)} yet")


def native(ctx: Context, name: str, handler: str, *flags: str) -> Server:
    require("rawproto", "serve", "RawDataClient", "AsyncRawDataClient")
    argv = [sys.executable, str(PEERS_DIR / "native_server.py"), handler, *flags]
    return Server(name, argv, ctx.pin, env=python_env(ROOT), cwd=PEERS_DIR)


def zmq_ipc(ctx: Context, name: str) -> Server:
    """pyzmq's REP socket on ``ipc://``: a Unix domain socket, as ours with ``uds``."""
    argv = [sys.executable, str(PEERS_DIR / "zmq_rep.py"), f"ipc://{ctx.tmp / 'zmq.sock'}"]
    return Server(name, argv, ctx.pin, env=python_env(ctx.env.peer("pyzmq")), cwd=PEERS_DIR)


def tinyproto(ctx: Context, name: str, which: str) -> Server:
    if which == "ours":
        require("rawproto.tinyproto", "TinyProtoServer", "TinyProtoConnection")
        path = ROOT
    else:
        path = ctx.env.peer("tinyproto-2.0.1")
    argv = [sys.executable, str(PEERS_DIR / "tinyproto_echo.py"), which]
    return Server(name, argv, ctx.pin, env=python_env(path), cwd=PEERS_DIR)


def rawproto_cli(ctx: Context, name: str, framing: str, spec: str) -> Server:
    require(f"rawproto.{framing}")
    argv = [sys.executable, "-m", "rawproto", "serve", framing, spec, "--port", "0"]
    return Server(name, argv, ctx.pin, env=python_env(ROOT))


SERVERS: dict[str, Callable[[Context, str], Server]] = {
    "asyncio-echo": lambda ctx, name: peer(ctx, name, "asyncio_echo.py"),
    "native-async": lambda ctx, name: native(ctx, name, "bench.handlers:AsyncEchoHandler"),
    "native-def": lambda ctx, name: native(ctx, name, "bench.handlers:EchoHandler"),
    "native-async-uds": lambda ctx, name: native(
        ctx, name, "bench.handlers:AsyncEchoHandler", "--uds", str(ctx.tmp / "native.sock")
    ),
    "tinyproto-ours": lambda ctx, name: tinyproto(ctx, name, "ours"),
    "tinyproto-original": lambda ctx, name: tinyproto(ctx, name, "original"),
    "zmq": lambda ctx, name: peer(ctx, name, "zmq_rep.py", ctx.env.peer("pyzmq")),
    "zmq-ipc": zmq_ipc,
    "mpconn": lambda ctx, name: peer(ctx, name, "mp_listener.py"),
    "http-async": lambda ctx, name: ours(ctx, name, "bench.handlers:AsyncEchoHandler"),
    "tcpy-ours": lambda ctx, name: rawproto_cli(ctx, name, "tcpy", "bench.raw_apps:tcpy_server"),
    "tcpy-socketserver": lambda ctx, name: peer(ctx, name, "tcpy_socketserver.py"),
    "pyts-ours": lambda ctx, name: rawproto_cli(ctx, name, "pyts", "bench.raw_apps:pyts_app"),
    "pyts-original": lambda ctx, name: peer(ctx, name, "pyts_original.py"),
    "pyts-ours-inline": lambda ctx, name: rawproto_cli(
        ctx, name, "pyts", "bench.raw_apps:pyts_inline_app"
    ),
    "pyts-floor": lambda ctx, name: peer(ctx, name, "pyts_floor.py"),
    "tcpy-floor": lambda ctx, name: peer(ctx, name, "tcpy_floor.py"),
}


def client_paths(ctx: Context, mode: str) -> list[Path]:
    if mode == "zmq":
        return [ctx.env.peer("pyzmq")]
    return [ROOT]


def run_client(
    ctx: Context, mode: str, server: Server, seconds: float, size: int, inflight: int = 1
) -> dict[str, float]:
    argv = [
        sys.executable,
        str(PEERS_DIR / "raw_client.py"),
        mode,
        f"unix:{server.uds}" if server.uds else server.host,
        str(server.port),
        str(seconds),
        str(size),
        str(inflight),
    ]
    proc = subprocess.run(
        ctx.pin.load_argv(argv),
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        env=python_env(*client_paths(ctx, mode)),
        cwd=str(PEERS_DIR),
    )
    try:
        result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise NotMeasured(f"the {mode} client failed: {tail[0][-300:]}") from None
    if not result.get("calls"):
        raise NotMeasured(f"the {mode} client completed no call")
    return result


@dataclass
class RawRow:
    label: str
    server: str  # a key of SERVERS
    mode: str  # raw_client.py's MODE
    inflight: int = 1
    ours: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def measure_rows(
    ctx: Context,
    section: Section,
    rows: list[RawRow],
    size: int,
    seconds: float,
    record: Callable[[RawRow, dict[str, float]], None],
    rss: bool = False,
) -> None:
    """Start each needed server once, then run the rows' clients in turn, round after round.

    ``rss``: also record the server's peak resident size over its size before
    the run (``peak_over_idle``, bytes), the kernel's high-water mark reset first.
    """
    with ServerGroup() as group:
        servers: dict[str, Server] = {}
        failed: dict[str, str] = {}
        for row in rows:
            if row.server in servers or row.server in failed:
                continue
            try:
                servers[row.server] = group.add(SERVERS[row.server](ctx, row.label))
            except NotMeasured as exc:
                failed[row.server] = str(exc)
        broken: set[str] = set()
        for row in rows:
            if row.server in failed:
                section.skip(row.label, failed[row.server])
                ctx.log(f"  {row.label}: not measured: {failed[row.server]}")
                broken.add(row.label)
        for r in range(ctx.rounds):
            for row in rows:
                if row.label in broken:
                    continue
                server = servers[row.server]
                idle = server.rss()
                peak_known = rss and server.reset_peak()
                cpu_before = cpu_seconds(server.pids())
                try:
                    result = run_client(ctx, row.mode, server, seconds, size, row.inflight)
                except (NotMeasured, subprocess.TimeoutExpired) as exc:
                    section.skip(row.label, str(exc))
                    ctx.log(f"  {row.label}: not measured: {exc}")
                    broken.add(row.label)
                    continue
                result["server_cpu"] = cpu_seconds(server.pids()) - cpu_before
                if peak_known:
                    result["peak_over_idle"] = max(0, server.peak_rss() - idle)
                record(row, result)
                rate = result["calls"] / result["seconds"]
                ctx.log(
                    f"  round {r + 1} {row.label:52} {rate:10,.0f}/s"
                    f"  p50 {result['p50_us'] or 0:9,.0f} µs  p99 {result['p99_us'] or 0:9,.0f} µs"
                )


def add_rate(table: Table, row: RawRow, result: dict[str, float], size: int = 0) -> None:
    table.add(row.label, "rate", result["calls"] / result["seconds"], ours=row.ours)
    if size:
        table.add(row.label, "mbs", result["calls"] * size / result["seconds"] / 1e6, ours=row.ours)
    calls = result["calls"]
    if "cpu" in result:
        table.add(row.label, "client_cpu", result["cpu"] / calls * 1e6, ours=row.ours)
    if "server_cpu" in result:
        table.add(row.label, "server_cpu", result["server_cpu"] / calls * 1e6, ours=row.ours)
    if result.get("p50_us") is not None and row.inflight == 1:
        table.add(row.label, "p50", result["p50_us"], ours=row.ours)
        table.add(row.label, "p99", result["p99_us"], ours=row.ours)
    if size and "peak_over_idle" in result:
        table.add(row.label, "peak_x", result["peak_over_idle"] / size, ours=row.ours)


def rss_metric() -> Metric:
    """The server's peak RSS above its size before the run, over the payload."""
    return Metric(
        "peak_x",
        "server peak RSS above idle / payload",
        "\u00d7",
        higher_is_better=False,
        fmt=".2f",
        ratios=False,
    )


def cpu_metrics() -> list[Metric]:
    """Where a call's time goes: CPU per call in the server and in the client process."""
    return [
        Metric(
            "server_cpu",
            "server CPU µs/call",
            "µs",
            higher_is_better=False,
            fmt=",.1f",
            ratios=False,
        ),
        Metric(
            "client_cpu",
            "client CPU µs/call",
            "µs",
            higher_is_better=False,
            fmt=",.1f",
            ratios=False,
        ),
    ]
