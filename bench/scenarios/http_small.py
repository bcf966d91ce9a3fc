"""1. HTTP small PUT: requests/s at 64 connections and latency at one (wrk)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..context import Context
from ..env import NotMeasured
from ..http import SEED_ANSWER, SEED_BODY, ours, peer, put
from ..proc import Server, ServerGroup, cpu_seconds
from ..results import Metric, Section, Table, Target
from ..wrk import lua_script, run_wrk

NAME = "http-small"
TITLE = "1. HTTP small PUT"
PEERS = ("fastapi", "aiohttp", "dataserve-0.1.0")

CEILING = "bare ASGI on uvicorn"
ORIGINAL = "dataserve 0.1.0 (original)"
OURS_DEF = "ours, seed's def handler"
OURS_ASYNC = "ours, async def handler"
FASTAPI = "FastAPI endpoint"

ABOUT = """\
`PUT /xdata` with the JSON body `[4, 5, 6]`; every server answers `[1, 2, 3, 4, 5, 6]`
(seed 001's handler). Requests/s with wrk at 64 connections (one wrk thread), and
p50/p99 latency at one connection. Ours runs as `dataserve serve MODULE:ATTR` with its
defaults (access log off, metrics and request ids on); the peers run with access logs
off. The ceiling is a bare ASGI callable doing the same work under the same uvicorn
(httptools, uvloop). The original dataserve 0.1.0 serves one connection at a time
(`http.server.HTTPServer`, HTTP/1.0, a listen backlog of 5), so at 64 connections most
of wrk's connections wait in the kernel's queue."""

LIMITS = """\
Both our handlers run on the same uvicorn protocol as the ceiling, plus our own work
per request, which the server CPU column measures: the protocol's checks (a header
size cap and an absolute header deadline, Host and framing checks), the endpoint
(codec lookup, body and handler deadlines, decode, encode), and the default
operations settings (Prometheus metrics and a request id per request, switched off
with `--no-metrics --no-request-id`). Against that, each of our answers leaves in one
`send` (head and body together), where the ceiling's take two.

For the `def` handler add the hop to the handler thread and back. It is amortised
(the handler thread runs every queued call per wake-up and hands all their results back
in one `call_soon_threadsafe`), but each wake-up of that thread costs the loop thread a
preemption and two GIL hand-overs on the one CPU the server has, about 9 µs of loop CPU
per request at the batch sizes wrk's 64 connections produce (8 to 9 calls). At one
connection nothing can be batched: each request pays the thread wake-up and the switch
back (about 20 µs), which is why the `def` row's latency is the furthest from the
ceiling. Five times the original's rate at one connection is more than the ceiling
itself reaches, so it is not a target.

What was tried, with py-spy and per-thread CPU counters on the server under wrk:
the endpoint armed an `asyncio.timeout` twice per request and the protocol a header
timer, each a loop timer created and cancelled (about 2 µs each on uvloop); all three
are now deadlines in one watchdog per event loop (a set swept by one timer, at most a
quarter second late: `dataserve.core.deadlines`), and the header deadline is only set
for a request whose headers do not arrive whole in one read. Metrics cost six locked
prometheus-client calls per request (about a fifth of our CPU); requests are now
tallied in plain integers and added to the Prometheus metrics at each scrape and every
half second. The observation of each request (request id, status, byte counts) wrapped
`receive` and `send` in closures; the endpoint now records them itself. The handler
pool waited on a `threading.Condition`; a `queue.SimpleQueue` wakes its thread with one
C-level lock. Handing a loop turn's calls to the thread together at the end of the
turn (fewer, larger batches) was measured and was slower: the hand-over became a loop
callback of its own and the batches did not grow."""


def _servers(ctx: Context) -> list[tuple[str, Callable[[], Server]]]:
    def orig() -> Server:
        return peer(ctx, ORIGINAL, "orig_dataserve.py", ctx.env.peer("dataserve-0.1.0"))

    return [
        (CEILING, lambda: peer(ctx, CEILING, "bare_asgi.py")),
        ("Starlette route", lambda: peer(ctx, "Starlette route", "starlette_app.py")),
        (FASTAPI, lambda: peer(ctx, FASTAPI, "fastapi_app.py", ctx.env.peer("fastapi"))),
        ("aiohttp", lambda: peer(ctx, "aiohttp", "aiohttp_app.py", ctx.env.peer("aiohttp"))),
        (ORIGINAL, orig),
        (OURS_DEF, lambda: ours(ctx, OURS_DEF, "bench.handlers:SeedHandler")),
        (OURS_ASYNC, lambda: ours(ctx, OURS_ASYNC, "bench.handlers:AsyncSeedHandler")),
    ]


def start_checked(
    ctx: Context,
    section: Section,
    group: ServerGroup,
    factories: list[tuple[str, Callable[[], Server]]],
    check: Callable[[Server], str],
) -> dict[str, Server]:
    """Start the servers at once; keep those that answer the workload correctly."""

    def start(item: tuple[str, Callable[[], Server]]) -> tuple[str, Server | str]:
        label, factory = item
        try:
            server = factory()
        except NotMeasured as exc:
            return label, str(exc)
        group.add(server)
        problem = check(server)
        return label, problem or server

    started: dict[str, Server] = {}
    with ThreadPoolExecutor(max_workers=len(factories)) as pool:
        for label, outcome in pool.map(start, factories):
            if isinstance(outcome, str):
                section.skip(label, outcome)
                ctx.log(f"  {label}: not measured: {outcome}")
            else:
                started[label] = outcome
    return started


def check_seed(server: Server) -> str:
    try:
        status, _, body = put(server.url, "/xdata", SEED_BODY, "application/json")
    except OSError as exc:
        return f"no answer to the seed's request: {exc}"
    if status != 200:
        return f"the seed's request got {status}: {body[:100]!r}"
    try:
        answer = json.loads(body)
    except ValueError:
        return f"the seed's request got a body that is not JSON: {body[:100]!r}"
    if answer != SEED_ANSWER:
        return f"the seed's request got {answer!r}, not {SEED_ANSWER!r}"
    return ""


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, about=ABOUT, limits=LIMITS)
    rate = Table(
        "Requests/s at 64 connections",
        [
            Metric("rps", "requests/s", "req/s"),
            Metric("cpu", "server CPU µs/request", "µs", higher_is_better=False, fmt=",.1f"),
        ],
        ceiling=CEILING,
        original=ORIGINAL,
        plot="rps",
    )
    latency = Table(
        "Latency at 1 connection",
        [
            Metric("p50", "p50 (µs)", "µs", higher_is_better=False),
            Metric("p99", "p99 (µs)", "µs", higher_is_better=False, ratios=False),
            Metric("rps1", "requests/s", "req/s"),
        ],
        ceiling=CEILING,
        original=ORIGINAL,
        plot="p50",
    )
    section.tables += [rate, latency]
    wrk_time = ctx.seconds(3.0)
    latency_time = ctx.seconds(2.0)
    section.settings = {
        "rounds": ctx.rounds,
        "seconds per run (64 connections)": wrk_time,
        "seconds per run (1 connection)": latency_time,
    }
    try:
        ctx.env.tool("wrk")
    except NotMeasured as exc:
        section.skipped = str(exc)
        return section
    script = lua_script(ctx.tmp, "PUT", SEED_BODY, "application/json")
    with ServerGroup() as group:
        servers = start_checked(ctx, section, group, _servers(ctx), check_seed)
        if not ctx.smoke:  # warm up: imports, caches, JIT-free but lazy paths
            for server in servers.values():
                run_wrk(
                    ctx.env, ctx.pin, server.url + "/xdata", script, connections=64, duration=0.5
                )
        for r in range(ctx.rounds):
            for label, server in servers.items():  # A B A B: drift hits every server alike
                ours_row = label.startswith("ours")
                cpu_before = cpu_seconds(server.pids())
                res = run_wrk(
                    ctx.env,
                    ctx.pin,
                    server.url + "/xdata",
                    script,
                    connections=64,
                    duration=wrk_time,
                )
                cpu = cpu_seconds(server.pids()) - cpu_before
                rate.add(label, "rps", res.requests_per_s, ours=ours_row)
                if res.requests:
                    rate.add(label, "cpu", cpu / res.requests * 1e6, ours=ours_row)
                one = run_wrk(
                    ctx.env,
                    ctx.pin,
                    server.url + "/xdata",
                    script,
                    connections=1,
                    duration=latency_time,
                )
                if one.p50 is not None and one.p99 is not None:
                    latency.add(label, "p50", one.p50 * 1e6, ours=ours_row)
                    latency.add(label, "p99", one.p99 * 1e6, ours=ours_row)
                latency.add(label, "rps1", one.requests_per_s, ours=ours_row)
                for what, result in (("64 connections", res), ("1 connection", one)):
                    if not result.clean:
                        note = f"{label}, round {r + 1}, {what}: {result.problems()}"
                        if note not in section.notes:
                            section.notes.append(note)
                ctx.log(
                    f"  round {r + 1} {label:32} {res.requests_per_s:10,.0f} req/s"
                    f"   p50 {(one.p50 and one.p50 * 1e6) or 0:8,.0f} µs"
                    f"   p99 {(one.p99 and one.p99 * 1e6) or 0:8,.0f} µs"
                )
    section.targets = [
        Target(
            "async def handler vs bare ASGI (req/s)", rate.ratio(OURS_ASYNC, CEILING, "rps"), 0.85
        ),
        Target("def handler vs bare ASGI (req/s)", rate.ratio(OURS_DEF, CEILING, "rps"), 0.7),
        Target("async def handler vs FastAPI (req/s)", rate.ratio(OURS_ASYNC, FASTAPI, "rps"), 2.5),
        Target("def handler vs FastAPI (req/s)", rate.ratio(OURS_DEF, FASTAPI, "rps"), 2.5),
        Target(
            "async def handler vs dataserve 0.1.0 (req/s)",
            rate.ratio(OURS_ASYNC, ORIGINAL, "rps"),
            5.0,
        ),
        Target(
            "def handler vs dataserve 0.1.0 (req/s)", rate.ratio(OURS_DEF, ORIGINAL, "rps"), 5.0
        ),
    ]
    return section
