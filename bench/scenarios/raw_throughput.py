"""4. Raw throughput: 1 MiB and 64 MiB messages on one connection, against pyzmq."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess

from ..context import Context
from ..env import NotMeasured
from ..raw import RawRow, add_rate, cpu_metrics, measure_rows, rss_metric
from ..results import Metric, Section, Table, Target

NAME = "raw-throughput"
TITLE = "4. Raw throughput, 1 MiB and 64 MiB messages"
PEERS = ("tinyproto-2.0.1", "pyzmq")

MiB = 1 << 20
IPERF = "iperf3, one direction (loopback limit)"
CEILING = "asyncio echo server, blocking-socket client"
ORIGINAL = "tinyproto 2.0.1 (original), tinyproto wire client"
NATIVE = "ours native, async def handler, RawDataClient"
ASYNC = "ours native, async def handler, AsyncRawDataClient"
UDS = "ours native over a Unix socket, RawDataClient"
ZMQ = "pyzmq REQ/REP"
ZMQ_IPC = "pyzmq REQ/REP over ipc:// (a Unix socket)"

ROWS = [
    RawRow(CEILING, "asyncio-echo", "lenprefix"),
    RawRow(NATIVE, "native-async", "native", ours=True),
    RawRow(ASYNC, "native-async", "native-async", ours=True),
    RawRow(
        "ours native, AsyncRawDataClient, 4 in flight",
        "native-async",
        "native-async",
        inflight=4,
        ours=True,
    ),
    RawRow("ours tinyproto facade, tinyproto wire client", "tinyproto-ours", "tinywire", ours=True),
    RawRow(ORIGINAL, "tinyproto-original", "tinywire"),
    RawRow(ZMQ, "zmq", "zmq"),
    RawRow("multiprocessing.connection", "mpconn", "mpconn"),
]

LARGE_ROWS = [
    RawRow(CEILING, "asyncio-echo", "lenprefix"),
    RawRow(NATIVE, "native-async", "native", ours=True),
    RawRow(ASYNC, "native-async", "native-async", ours=True),
    RawRow(UDS, "native-async-uds", "native", ours=True),
    RawRow(ZMQ, "zmq", "zmq"),
    RawRow(ZMQ_IPC, "zmq-ipc", "zmq"),
]

ABOUT = """\
One connection, 1 MiB then 64 MiB payloads echoed back, one round trip at a time
unless said otherwise (pyzmq's REQ/REP cannot do otherwise). MB/s counts each payload
once (10^6 bytes per second of round trips), so every byte crosses loopback twice.
iperf3 measures the loopback limit in one direction (server and client pinned as for
the others); the asyncio echo server pays the same round-trip structure as ours.
The server's peak RSS above idle is the kernel's high-water mark (`VmHWM`, reset
before each run) less the resident size just before it, over the payload; memory
the allocator kept from earlier runs counts as idle. Above 1 MiB, every client
compares its first answer with the payload whole and the others by length and
samples."""

LIMITS = """\
At 64 MiB the kernel's copies are all that is left: the server reads each frame
into the one buffer the handler gets and writes the answer from it, and the client
reads the answer into one buffer of its announced size, so we move 2-2.8x pyzmq's
MB/s, which copies each message in user space. At 1 MiB we were at 0.55-0.60x pyzmq
until loopback connections stopped being paced. This machine's congestion control is
BBR, which spreads a connection's sends over time at its estimate of the path's
bandwidth; on loopback that estimate was low for our connections (`ss -ti` showed a
pacing rate of 69 Gbit/s for ours against 207 for pyzmq's), and the server's one
`writev` of a 1 MiB answer took 205 us on average against 59 us for pyzmq's `sendto`
of the same bytes. Our listeners on a loopback address and our clients connecting to
one now switch a pacing congestion control to reno (`dataserve.core.net`,
`docs/architecture.md`): 1 MiB round trips went from about 2,250 to about 4,000 per
second, level with pyzmq, and 100-byte round trips did not change (62,928 and 65,627
calls in 4 s with reno, 65,154 and 61,169 without). `perf` puts under 5% of either
side's samples in the interpreter; the rest is the kernel's loopback path. Setting
`SO_RCVLOWAT` to the frame's size, to be woken once, made it worse on this kernel: 75
round trips per second on the client, and stalls when both sides set it (the sender
waits for a window update that a reader below its mark does not send), so we do not
use it."""


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


def _table(title: str, original: str | None) -> Table:
    return Table(
        title,
        [
            Metric("mbs", "MB/s", "MB/s"),
            Metric("rate", "round trips/s", "1/s", fmt=",.1f", ratios=False),
            *cpu_metrics(),
            rss_metric(),
        ],
        ceiling=CEILING,
        original=original,
        plot="mbs",
    )


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, about=ABOUT, limits=LIMITS)
    table = _table("MB/s with 1 MiB messages", ORIGINAL)
    large = _table("MB/s with 64 MiB messages", None)
    section.tables += [table, large]
    seconds = ctx.seconds(3.0, 0.3)
    large_size = ctx.pick(64 * MiB, 4 * MiB)
    section.settings = {
        "rounds": ctx.rounds,
        "seconds per run": seconds,
        "large payload": f"{large_size // MiB} MiB",
    }
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
        ctx,
        section,
        ROWS,
        size,
        seconds,
        lambda row, res: add_rate(table, row, res, size),
        rss=True,
    )
    measure_rows(
        ctx,
        section,
        LARGE_ROWS,
        large_size,
        seconds,
        lambda row, res: add_rate(large, row, res, large_size),
        rss=True,
    )
    mib = large_size // MiB
    section.targets = [
        Target(
            "native 1 MiB messages vs asyncio echo ceiling (MB/s)",
            table.ratio(NATIVE, CEILING, "mbs"),
            0.7,
        ),
    ]
    for t, n in ((table, 1), (large, mib)):
        section.targets += [
            Target(
                f"RawDataClient vs pyzmq REQ/REP, {n} MiB (MB/s)", t.ratio(NATIVE, ZMQ, "mbs"), 1.0
            ),
            Target(
                f"AsyncRawDataClient vs pyzmq REQ/REP, {n} MiB (MB/s)",
                t.ratio(ASYNC, ZMQ, "mbs"),
                1.0,
            ),
            Target(
                f"our server's peak RSS above idle / payload, {n} MiB",
                t.median(NATIVE, "peak_x"),
                1.25,
                at_most=True,
            ),
        ]
    ratio = large.ratio(UDS, NATIVE, "mbs")
    if ratio is not None:
        section.notes.append(
            f"{mib} MiB: the native framing over a Unix socket at {ratio:.2f}\u00d7 its MB/s "
            "over loopback TCP (RawDataClient both)."
        )
    ratio = large.ratio(ZMQ_IPC, ZMQ, "mbs")
    if ratio is not None:
        section.notes.append(
            f"{mib} MiB: pyzmq over ipc:// at {ratio:.2f}\u00d7 its MB/s over TCP."
        )
    return section
