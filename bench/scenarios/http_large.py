"""2. HTTP large payload: 64 MiB and 512 MiB round trips, MB/s and server peak RSS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..context import Context
from ..env import ROOT, NotMeasured, python_env
from ..http import PEERS_DIR, ours, peer
from ..proc import Server, ServerGroup
from ..results import Metric, Section, Table, Target
from .http_small import start_checked

NAME = "http-large"
TITLE = "2. HTTP large payload"
PEERS = ("dataserve-0.1.0", "requests")

MiB = 1 << 20
CEILING = "bare ASGI on uvicorn"
ORIGINAL = "dataserve 0.1.0 (original)"
OURS = "ours, def echo handler"
OURS_UDS = "ours over a Unix socket (--uds)"
FLOOR = "floor: blocking echo, one reused buffer"
CURL = "curl"
OUR_CLIENT = "ours: HTTPDataClient"
OUR_CLIENT_UDS = "ours: HTTPDataClient over a Unix socket"
REQUESTS = "requests"
HTTPX = "httpx"
ORIGINAL_PAIR = "original: requests against dataserve 0.1.0"

ABOUT = """\
`PUT /echo` with an `application/octet-stream` body; every server sends the body back.
MB/s is the payload size (10^6 bytes) over the time of the whole round trip (upload,
handler, download). Servers are measured with curl (`-T file`, no `Expect`), which
streams from a file, twice per round: one echo, then a second right after it (the
"again" column: a client sending one large body after another). Then Python clients
against our server, each in its own process, and the original pairing (the original
client, requests, against the original server). The floor row is a 50-line blocking
server that reads the body into one `bytearray` it keeps from request to request and
sends it back: two kernel copies and no page faults once warm. The server's peak
memory is the kernel's high-water mark (`VmHWM`) over both echoes, minus the server's
resident size before its first large body, so memory a server keeps between requests
counts against it."""

LIMITS = """\
Our server reads a body of known length straight into the one `bytes` object the
handler gets (a buffered protocol: the kernel copies into it, no pieces and no join)
and writes the answer as that object without a copy: the peak is the payload itself,
where bare ASGI on uvicorn takes twice it. What is left is two kernel copies and the
page faults of fresh memory, and on this VM the faults cost the most: filling 512 MiB
of fresh memory takes 0.19-0.30 s, filling it again 0.015-0.026 s (prefaulting with
`MADV_POPULATE_WRITE` costs the same as the faults). The original pays them on every
request. So the server keeps the buffer of a body of 1 MiB or more once nobody holds it
and fills it again for the next body of a like size (`--buffer-retain`, 1 GiB;
`--buffer-linger`, 10 s; docs/security.md). Our listener on 127.0.0.1 also sends
unpaced: this machine's congestion control is BBR, and a listener on a loopback address
switches its connections to reno (`docs/architecture.md`, "Loopback connections"); the
answer then leaves as fast as curl reads it, which took the 64 MiB echo from 1.54x to
1.85x the original in this bench. An echo right after another runs at the floor, and
this machine's noise decides where in a range of runs it falls. At 64 MiB the rounds
come within the linger, so the first echo reuses a buffer too; at 512 MiB it comes after
more than 10 s of the others' turns and gets fresh memory, as the original's every echo
does. That first 512 MiB echo cannot reach 1.5x here: both servers pay the same 0.19 s or
more of faults, and the original's whole echo takes about 0.4 s, so 1.5x would leave us
0.08 s for two kernel copies of 512 MiB each way; the floor row, which faults only on its
first body, reaches about 1.4x. A longer linger would meet it in this bench and hold idle
memory longer in real use; 10 s is jemalloc's own default for giving freed memory back.
Transparent huge pages were tried for the fresh buffers and dropped: this VM hands free
memory back to its host in blocks of the huge-page size, so a cold huge page costs more
than 512 small ones (0.41x the original at 512 MiB, against 1.07x with 4 KiB pages).
Over the Unix socket curl is the limit: it uploads in 64 KiB writes, each a wake-up of
the server (1,012 reads of 64 KiB per 64 MiB body), and a 1 or 4 MiB send buffer on the
server's side changed nothing (0.10-0.15 s per echo either way); our own client is faster
over the Unix socket than over TCP. The Python clients are bound by httpx's and
requests' own reading, by loopback TCP, and by their own fresh memory: each is a new
process that makes the payload and reads the answer, 1 GiB at 512 MiB, and on this VM the
first touch of memory the host has taken back costs several times more than of memory
another process just freed. Our client's 512 MiB echo took 3.3 s, then 0.5-0.8 s in runs
right after one another, so the client rows move with what ran before them; the order of
the clients turns each round."""


def _payload_file(ctx: Context, size: int) -> Path:
    path = ctx.tmp / f"payload-{size}.bin"
    if not path.exists():
        with open(path, "wb") as f:
            block = b"\x5a" * MiB
            for _ in range(size // MiB):
                f.write(block)
            f.write(b"\x5a" * (size % MiB))
    return path


def _curl(ctx: Context, server: Server, path: Path, size: int) -> float:
    curl = ctx.env.tool("curl")
    where = ["--unix-socket", server.uds, "http://localhost"] if server.uds else [server.url]
    argv = [
        curl, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
        "-T", str(path), "-H", "Content-Type: application/octet-stream", "-H", "Expect:",
        *where[:-1], where[-1] + "/echo",
    ]  # fmt: skip
    proc = subprocess.run(ctx.pin.load_argv(argv), capture_output=True, text=True, timeout=600)
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) != 3:
        raise NotMeasured(f"curl failed: {proc.stderr.strip()[-200:]}")
    status, received, seconds = int(parts[0]), int(float(parts[1])), float(parts[2])
    if status != 200 or received != size:
        raise NotMeasured(f"curl got status {status} and {received} of {size} bytes")
    return seconds


def _client(ctx: Context, kind: str, url: str, size: int) -> dict[str, float]:
    paths: list[Path] = [ROOT]
    if kind == "requests":
        paths = [ctx.env.peer("requests")]
    argv = [sys.executable, str(PEERS_DIR / "large_client.py"), kind, url, str(size)]
    proc = subprocess.run(
        ctx.pin.load_argv(argv), capture_output=True, text=True, timeout=600, env=python_env(*paths)
    )
    try:
        result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise NotMeasured(f"{kind} client failed: {proc.stderr.strip()[-300:]}") from None
    if not result.get("ok"):
        raise NotMeasured(f"{kind} client got a different answer back")
    return result


def _check_echo(server: Server) -> str:
    from ..http import put

    try:
        status, _, body = put(server.url, "/echo", b"\x01\x02\x03", "application/octet-stream")
    except OSError as exc:
        return f"no answer: {exc}"
    if status != 200 or body != b"\x01\x02\x03":
        return f"echo got status {status}, body {body[:50]!r}"
    return ""


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, about=ABOUT, limits=LIMITS)
    sizes = [1 * MiB] if ctx.smoke else [64 * MiB, 512 * MiB]
    section.settings = {
        "rounds": ctx.rounds,
        "payloads": ", ".join(f"{s // MiB} MiB" for s in sizes),
    }
    servers_tables: dict[int, Table] = {}
    clients_tables: dict[int, Table] = {}
    for size in sizes:
        servers_tables[size] = Table(
            f"Servers, {size // MiB} MiB round trip with curl",
            [
                Metric("mbs", "MB/s", "MB/s", fmt=",.0f"),
                Metric("again", "MB/s, a second echo right after", "MB/s", fmt=",.0f"),
                Metric(
                    "peak",
                    "server peak RSS above idle (MiB)",
                    "MiB",
                    higher_is_better=False,
                    fmt=",.0f",
                    ratios=False,
                ),
                Metric(
                    "peak_x",
                    "peak above idle / payload",
                    "\u00d7",
                    higher_is_better=False,
                    fmt=".2f",
                    ratios=False,
                ),
            ],
            ceiling=CEILING,
            original=ORIGINAL,
            plot="mbs",
        )
        clients_tables[size] = Table(
            f"Clients against our server, {size // MiB} MiB round trip",
            [
                Metric("mbs", "MB/s", "MB/s", fmt=",.0f"),
                Metric(
                    "peak",
                    "client peak RSS (MiB)",
                    "MiB",
                    higher_is_better=False,
                    fmt=",.0f",
                    ratios=False,
                ),
            ],
            ceiling=CURL,
            original=ORIGINAL_PAIR,
            plot="mbs",
        )
        section.tables += [servers_tables[size], clients_tables[size]]
    try:
        ctx.env.tool("curl")
    except NotMeasured as exc:
        section.skipped = str(exc)
        return section

    def orig() -> Server:
        return peer(ctx, ORIGINAL, "orig_dataserve.py", ctx.env.peer("dataserve-0.1.0"))

    uds = str(ctx.tmp / "ours.sock")
    factories: list[tuple[str, Callable[[], Server]]] = [
        (CEILING, lambda: peer(ctx, CEILING, "bare_asgi.py")),
        ("Starlette route", lambda: peer(ctx, "Starlette route", "starlette_app.py")),
        (ORIGINAL, orig),
        (OURS, lambda: ours(ctx, OURS, "bench.handlers:EchoHandler")),
        (OURS_UDS, lambda: ours(ctx, OURS_UDS, "bench.handlers:EchoHandler", "--uds", uds)),
        (FLOOR, lambda: peer(ctx, FLOOR, "warm_echo.py")),
    ]
    # client -> (its kind for large_client.py, the server it talks to)
    clients = {
        OUR_CLIENT: ("ours", OURS),
        OUR_CLIENT_UDS: ("ours", OURS_UDS),
        REQUESTS: ("requests", OURS),
        HTTPX: ("httpx", OURS),
        ORIGINAL_PAIR: ("requests", ORIGINAL),
    }
    broken: set[str] = set()
    with ServerGroup() as group:
        servers = start_checked(ctx, section, group, factories, _check_echo)
        # Idle is each server's resident size before its first large body: what
        # a server keeps afterwards (an allocator's heap, our buffer cache)
        # counts against it.
        idle = {label: server.rss() for label, server in servers.items()}
        for size in sizes:
            path = _payload_file(ctx, size)
            st, ct = servers_tables[size], clients_tables[size]
            for r in range(ctx.rounds):
                for label, server in servers.items():
                    if label in broken:
                        continue
                    server.reset_peak()
                    try:
                        seconds = _curl(ctx, server, path, size)
                        again = _curl(ctx, server, path, size)
                    except NotMeasured as exc:
                        section.skip(f"{label} with curl, {size // MiB} MiB", str(exc))
                        broken.add(label)
                        continue
                    peak = server.peak_rss() - idle[label]
                    mine = label in (OURS, OURS_UDS)
                    st.add(label, "mbs", size / seconds / 1e6, ours=mine)
                    st.add(label, "again", size / again / 1e6, ours=mine)
                    st.add(label, "peak", peak / MiB, ours=mine)
                    st.add(label, "peak_x", peak / size, ours=mine)
                    ctx.log(
                        f"  {size // MiB} MiB round {r + 1} {label:30} "
                        f"{size / seconds / 1e6:8,.0f} MB/s, again {size / again / 1e6:8,.0f}"
                        f"  peak RSS {peak / MiB:7,.0f} MiB"
                    )
                # Each round starts with another client: a fresh process's first
                # gigabyte is slow or fast by what the processes before it freed
                # (see LIMITS), so no client keeps the same place.
                order = list(clients.items())
                order = order[r % len(order) :] + order[: r % len(order)]
                for client, (kind, target) in order:
                    if client in broken or target not in servers:
                        continue
                    server = servers[target]
                    try:
                        result = _client(ctx, kind, server.url, size)
                    except NotMeasured as exc:
                        section.skip(f"{client}, {size // MiB} MiB", str(exc))
                        broken.add(client)
                        continue
                    mine = client in (OUR_CLIENT, OUR_CLIENT_UDS)
                    ct.add(client, "mbs", size / result["seconds"] / 1e6, ours=mine)
                    ct.add(client, "peak", result["peak_rss"] / MiB, ours=mine)
                    mbs = size / result["seconds"] / 1e6
                    ctx.log(
                        f"  {size // MiB} MiB round {r + 1} client {client:22} {mbs:8,.0f} MB/s"
                    )
            # curl against our server is the clients' ceiling: the same figures as above.
            if OURS in servers and st.median(OURS, "mbs") is not None:
                row = next(rw for rw in st.rows if rw.label == OURS)
                ct.rows.insert(0, type(row)(CURL, {"mbs": list(row.values["mbs"])}))
    for size in sizes:
        st, ct = servers_tables[size], clients_tables[size]
        mib = size // MiB
        section.targets += [
            Target(
                f"ours vs dataserve 0.1.0, {mib} MiB (MB/s)", st.ratio(OURS, ORIGINAL, "mbs"), 1.5
            ),
            Target(
                f"ours vs dataserve 0.1.0, {mib} MiB, a second echo right after (MB/s)",
                st.ratio(OURS, ORIGINAL, "again"),
                1.5,
            ),
            Target(
                f"our server's peak RSS above idle / payload, {mib} MiB",
                st.median(OURS, "peak_x"),
                1.25,
                at_most=True,
            ),
            Target(
                f"HTTPDataClient to ours vs requests to dataserve 0.1.0, {mib} MiB (MB/s)",
                ct.ratio(OUR_CLIENT, ORIGINAL_PAIR, "mbs"),
                1.5,
            ),
            Target(
                f"ours over a Unix socket vs loopback TCP, {mib} MiB (MB/s)",
                st.ratio(OURS_UDS, OURS, "mbs"),
                1.0,
            ),
            Target(f"ours vs bare ASGI, {mib} MiB (MB/s)", st.ratio(OURS, CEILING, "mbs"), 1.0),
        ]
        ratio, again = st.ratio(OURS, ORIGINAL, "mbs"), st.ratio(OURS, ORIGINAL, "again")
        floor = st.ratio(OURS, FLOOR, "again")
        if ratio is not None and again is not None and floor is not None:
            section.notes.append(
                f"{mib} MiB: our server at {ratio:.2f}\u00d7 the original dataserve's MB/s, "
                f"{again:.2f}\u00d7 for an echo right after another, and {floor:.2f}\u00d7 "
                "the floor (a blocking echo into one reused buffer) there."
            )
    return section
