"""7. Scale: HTTP requests/s with ``--workers 2`` against one worker."""

from __future__ import annotations

import os

from ..context import Context
from ..env import NotMeasured
from ..http import SEED_BODY, ours
from ..proc import ServerGroup
from ..results import Metric, Section, Table, Target
from ..wrk import lua_script, run_wrk
from .http_small import check_seed, start_checked

NAME = "scale"
TITLE = "7. Scale: --workers 2 against 1"
PEERS: tuple[str, ...] = ()

ONE = "ours, --workers 1"
TWO = "ours, --workers 2"

ABOUT = """\
Seed 001's handler (`def`) behind `dataserve serve --workers N`, `PUT /xdata [4, 5, 6]`
at 64 connections. Nothing is pinned here: the workers may use every CPU, and wrk (one
thread) shares them, so on a 2-CPU machine two workers compete with the load
generator for the second CPU. The ceiling row is one worker."""

LIMITS = """\
With N CPUs and the load generator on the same machine, N workers get at most
N minus wrk's share of CPUs. uvicorn's supervisor shares one listening socket between the
workers, and the kernel wakes whichever is waiting in accept; a busy worker takes
fewer connections, which keeps the split fair under load."""


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, about=ABOUT, limits=LIMITS)
    table = Table(
        "Requests/s at 64 connections",
        [Metric("rps", "requests/s", "req/s")],
        ceiling=ONE,
        plot="rps",
    )
    section.tables.append(table)
    duration = ctx.seconds(4.0)
    section.settings = {"rounds": ctx.rounds, "seconds per run": duration, "CPUs": os.cpu_count()}
    try:
        ctx.env.tool("wrk")
    except NotMeasured as exc:
        section.skipped = str(exc)
        return section
    script = lua_script(ctx.tmp, "PUT", SEED_BODY, "application/json")
    factories = [
        (ONE, lambda: ours(ctx, ONE, "bench.handlers:SeedHandler", "--workers", "1", pinned=False)),
        (TWO, lambda: ours(ctx, TWO, "bench.handlers:SeedHandler", "--workers", "2", pinned=False)),
    ]
    with ServerGroup() as group:
        servers = start_checked(ctx, section, group, factories, check_seed)
        if TWO in servers:
            # The supervisor answers before its workers have started: let every
            # worker serve a request first.
            for _ in range(20):
                check_seed(servers[TWO])
        for r in range(ctx.rounds):
            for label, server in servers.items():
                res = run_wrk(
                    ctx.env,
                    ctx.pin,
                    server.url + "/xdata",
                    script,
                    connections=64,
                    duration=duration,
                    pinned=False,
                )
                table.add(label, "rps", res.requests_per_s, ours=True)
                if not res.clean:
                    section.notes.append(f"{label}, round {r + 1}: {res.problems()}")
                ctx.log(f"  round {r + 1} {label:24} {res.requests_per_s:10,.0f} req/s")
    section.targets = [
        Target("--workers 2 vs --workers 1 (req/s)", table.ratio(TWO, ONE, "rps"), 1.6)
    ]
    return section
