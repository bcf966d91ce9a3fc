"""4. Raw throughput: 1 MiB messages on one connection, against the loopback limit."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess

from ..context import Context
from ..env import NotMeasured
from ..raw import RawRow, add_rate, cpu_metrics, measure_rows
from ..results import Metric, Section, Table, Target

NAME = "raw-throughput"
TITLE = "4. Raw throughput, 1 MiB messages"
PEERS = ("tinyproto-2.0.1", "pyzmq")

MiB = 1 << 20
IPERF = "iperf3, one direction (loopback limit)"
CEILING = "asyncio echo server, blocking-socket client"
ORIGINAL = "tinyproto 2.0.1 (original), tinyproto wire client"
NATIVE = "ours native, async def handler, RawDataClient"

ROWS = [
    RawRow(CEILING, "asyncio-echo", "lenprefix"),
    RawRow(NATIVE, "native-async", "native", ours=True),
    RawRow(
        "ours native, AsyncRawDataClient, 4 in flight",
        "native-async",
        "native-async",
        inflight=4,
        ours=True,
    ),
    RawRow("ours tinyproto facade, tinyproto wire client", "tinyproto-ours", "tinywire", ours=True),
    RawRow(ORIGINAL, "tinyproto-original", "tinywire"),
    RawRow("pyzmq REQ/REP", "zmq", "zmq"),
    RawRow("multiprocessing.connection", "mpconn", "mpconn"),
]

ABOUT = """\
One connection, 1 MiB payloads echoed back. MB/s counts each payload once (10^6
bytes per second of round trips), so every byte crosses loopback twice. iperf3
measures the loopback limit in one direction (server and client pinned as for the
others); the target compares with the asyncio echo server, which pays the same
round-trip structure as ours."""

LIMITS = """\
A 1 MiB frame arrives in many reads; the native protocol collects them and hands
the payload on in one piece, and the reply goes out as one `writelines` of header
and payload. What is left is copies: the frame is assembled from the reads on the
server (one copy). The client sends a large payload without joining it to its
header, and after a large answer reads the next payload with one
`recv(n, MSG_WAITALL)` straight into the `bytes` it returns, which halved its CPU per
call (1,290 → 623 µs, where the ceiling's client uses about 500 to 600)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iperf(ctx: Context, seconds: float) -> float:
    iperf3 = ctx.env.tool("iperf3")
    port = _free_port()
    proc_server = subprocess.Popen(
        ctx.pin.server_argv(
            [iperf3, "-s", "-1", "-B", "127.0.0.1", "-p", str(port), "--forceflush"]
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc_server.stdout is not None
        fd = proc_server.stdout.fileno()
        seen = b""
        while b"listening" not in seen:  # "Server listening on PORT" once it listens
            ready, _, _ = select.select([fd], [], [], 30)
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                raise NotMeasured(f"iperf3 -s did not start: {seen.decode(errors='replace')}")
            seen += chunk
        argv = [iperf3, "-c", "127.0.0.1", "-p", str(port), "-t", str(max(1, round(seconds))), "-J"]
        out = subprocess.run(
            ctx.pin.load_argv(argv), capture_output=True, text=True, timeout=seconds + 60
        )
        try:
            data = json.loads(out.stdout)
            return float(data["end"]["sum_received"]["bits_per_second"]) / 8 / 1e6
        except (ValueError, KeyError) as exc:
            raise NotMeasured(
                f"iperf3 gave no result: {out.stdout[-200:]}{out.stderr[-200:]}"
            ) from exc
    finally:
        proc_server.kill()
        proc_server.wait()


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, about=ABOUT, limits=LIMITS)
    table = Table(
        "MB/s with 1 MiB messages",
        [
            Metric("mbs", "MB/s", "MB/s"),
            Metric("rate", "round trips/s", "1/s", fmt=",.0f", ratios=False),
            *cpu_metrics(),
        ],
        ceiling=CEILING,
        original=ORIGINAL,
        plot="mbs",
    )
    section.tables.append(table)
    seconds = ctx.seconds(3.0, 0.3)
    section.settings = {"rounds": ctx.rounds, "seconds per run": seconds}
    size = MiB
    for r in range(ctx.rounds):
        try:
            mbs = _iperf(ctx, seconds)
        except NotMeasured as exc:
            section.skip(IPERF, str(exc))
            break
        table.add(IPERF, "mbs", mbs)
        ctx.log(f"  round {r + 1} {IPERF:52} {mbs:10,.0f} MB/s")
    measure_rows(
        ctx, section, ROWS, size, seconds, lambda row, res: add_rate(table, row, res, size)
    )
    section.targets = [
        Target(
            "native 1 MiB messages vs asyncio echo ceiling (MB/s)",
            table.ratio(NATIVE, CEILING, "mbs"),
            0.7,
        ),
    ]
    return section
