"""3. Raw round trip: 100-byte messages on one connection."""

from __future__ import annotations

from ..context import Context
from ..raw import RawRow, add_rate, cpu_metrics, measure_rows
from ..results import Metric, Section, Table, Target

NAME = "raw-roundtrip"
TITLE = "3. Raw round trip, 100-byte messages"
PEERS = ("tinyproto-2.0.1", "pyzmq")

CEILING = "asyncio echo server, blocking-socket client"
ORIGINAL = "tinyproto 2.0.1 (original), tinyproto wire client"
NATIVE = "ours native, async def handler, RawDataClient"
PIPELINED = "ours native, AsyncRawDataClient, 32 in flight"
FACADE = "ours tinyproto facade, tinyproto wire client"
HTTP = "ours HTTP keep-alive, 1 connection, async def handler"

ROWS = [
    RawRow(CEILING, "asyncio-echo", "lenprefix"),
    RawRow(NATIVE, "native-async", "native", ours=True),
    RawRow("ours native, def handler, RawDataClient", "native-def", "native", ours=True),
    RawRow(PIPELINED, "native-async", "native-async", inflight=32, ours=True),
    RawRow(FACADE, "tinyproto-ours", "tinywire", ours=True),
    RawRow(ORIGINAL, "tinyproto-original", "tinywire"),
    RawRow("pyzmq REQ/REP", "zmq", "zmq"),
    RawRow("multiprocessing.connection", "mpconn", "mpconn"),
    RawRow(HTTP, "http-async", "http", ours=True),
]

ABOUT = """\
One connection, a 100-byte payload echoed back, as many round trips as fit in the run;
each client is a Python process on the load CPU, each server on the server CPU. The
ceiling is the simplest asyncio server that can answer (a length-prefixed echo
`asyncio.Protocol` on uvloop) with a blocking-socket client. The tinyproto rows speak
tinyproto's wire on a blocking socket to our facade and to the original 2.0.1 server
(whose connection threads poll with `select` and sleep 10 ms between passes). The
pipelined row keeps 32 requests in flight on one connection; its latency is not
comparable and is left out. HTTP is our server with an `async def` echo handler and a
keep-alive `http.client` connection."""

LIMITS = """\
A round trip on the native framing costs a frame parse and build on each side, the
codec's tag, a request id and the handler call, in Python, where the ceiling only
slices bytes; the CPU columns show both sides at several times the ceiling's cost per
call, so the client counts as much as the server. Seen with py-spy in the server: a
task per request even for an `async def` handler that finishes without waiting, a
loop timer armed and cancelled per request for the handler deadline, validation of
each event dataclass the server builds itself, Python-level length checks of the
receive buffer after each event, and the deadline bookkeeping after each event. In
`RawDataClient` (cProfile): a `select` per call to see whether the connection went
stale, a context manager per call for error translation, and the sans-IO parser's
generator steps. The `def` handler row pays the hop to the handler thread and back on
every request; with one connection nothing can be batched. The tinyproto facade runs
each connection's hooks on a thread, as the original does, so every message crosses
threads twice, and tinyproto's wire needs three exchanges per message (length,
accept byte, payload)."""


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, about=ABOUT, limits=LIMITS)
    table = Table(
        "Round trips/s and latency",
        [
            Metric("rate", "round trips/s", "1/s"),
            Metric("p50", "p50 (µs)", "µs", higher_is_better=False, fmt=",.0f", ratios=False),
            Metric("p99", "p99 (µs)", "µs", higher_is_better=False, fmt=",.0f", ratios=False),
            *cpu_metrics(),
        ],
        ceiling=CEILING,
        original=ORIGINAL,
        plot="rate",
    )
    section.tables.append(table)
    seconds = ctx.seconds(3.0, 0.3)
    section.settings = {"rounds": ctx.rounds, "seconds per run": seconds}
    measure_rows(ctx, section, ROWS, 100, seconds, lambda row, res: add_rate(table, row, res))
    section.targets = [
        Target(
            "native round trip vs asyncio echo ceiling", table.ratio(NATIVE, CEILING, "rate"), 0.8
        ),
        Target(
            "pipelined async client vs HTTP keep-alive, 1 connection",
            table.ratio(PIPELINED, HTTP, "rate"),
            3.0,
        ),
        Target(
            "tinyproto facade vs original tinyproto", table.ratio(FACADE, ORIGINAL, "rate"), 50.0
        ),
    ]
    return section
