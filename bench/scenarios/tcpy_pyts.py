"""5. tcpy and pyts: calls/s, against the original protocols' behaviour."""

from __future__ import annotations

from ..context import Context
from ..raw import RawRow, add_rate, cpu_metrics, measure_rows
from ..results import Metric, Section, Table

NAME = "tcpy-pyts"
TITLE = "5. tcpy and pyts calls"
PEERS: tuple[str, ...] = ()

TCPY_ORIGINAL = "tcpy's behaviour: threaded socketserver, connection per call"
PYTS_ORIGINAL = "pyts's behaviour: one connection at a time"

TCPY_ROWS = [
    RawRow("ours tcpy, connection per call", "tcpy-ours", "tcpy-call", ours=True),
    RawRow("ours tcpy, persistent connection", "tcpy-ours", "tcpy-persistent", ours=True),
    RawRow(TCPY_ORIGINAL, "tcpy-socketserver", "tcpy-call"),
]
PYTS_ROWS = [
    RawRow("ours pyts, connection per call", "pyts-ours", "pyts-call", ours=True),
    RawRow(PYTS_ORIGINAL, "pyts-original", "pyts-call"),
]

ABOUT = """\
tcpy: seed 002's `add` command (`{"cmd": "add", "x": 1, "y": 2}` answered
`{"success": true, "solution": 3}`), spoken by a minimal blocking client on tcpy's wire:
a connection per call, as the original client does, and one persistent connection,
which our server also accepts. The original tcpy server is not on PyPI; its behaviour
(read one message, answer, close; a thread per connection) is reproduced with the
standard library's threaded `socketserver`. pyts: seed 000's index route, one JSON
document each way per connection; the original's server (one connection at a time,
one `recv(1024)`, answer, close) is likewise reproduced with plain sockets. Our servers
run as `python -m rawproto serve tcpy|pyts MODULE:ATTR`."""

LIMITS = """\
A connection per call costs a TCP handshake, an accept, the connection's objects and
the close, for one small message: the persistent tcpy row shows what the call itself
costs. Our servers check every limit (frame size, msgpack container length and depth,
deadlines) where the originals check none.

pyts is served on a one-shot connection (`rawproto.engine.oneshot`: a bare protocol
that parses the one document, answers with one write and closes, one timer, no
session, pump or task), and a tcpy request is answered without a task; together they
took pyts from 4,300 to 6,500 calls/s (server CPU 165 to 104 us per call) and tcpy's
connection per call from 171 to 141 us. What is left is the hop to the handler
thread: timing seed 000's index route three ways, the `def` handler ran at 0.57x
the original (97 us of server CPU per call), the same handler marked `@inline` at
0.74x (65 us), `async def` between them (a Task per call on Python 3.11). In a py-spy
profile of the `def` path the loop thread is switched out in `SimpleQueue.put`, having
woken the handler thread, in 37% of its samples, and the handler thread spends a third
of its samples waiting for the GIL; with the server on one CPU each hop is two context
switches and two GIL hand-overs, once to the handler and once back, about as much as
the original's whole call (37 us). A plain `def` handler runs on the handler threads
so that it may block without stopping every other connection; the originals run it on
their only thread, one client at a time. The rest of the `@inline` cost is about 120
Python calls per connection (accept, parse, route, the Request and Response objects,
encode, close) and uvloop's own per-connection work. tcpy's connection per call pays
the same hop: in a `perf` profile of our tcpy server (server on one CPU, a connection
per call), 27% of its samples are in the kernel's `finish_task_switch`, the context
switches of the hop there and back, and 36% in the interpreter. Running seed 002's
handler on the loop instead, as an experiment, gave 0.96-1.15x the threaded
socketserver (6,700-8,000 calls/s against 7,000); a tcpy handler may converse with its
client (`recv` inside `execute`) and block, so it stays on the handler threads."""


def _table(title: str, original: str) -> Table:
    return Table(
        title,
        [
            Metric("rate", "calls/s", "1/s"),
            Metric("p50", "p50 (µs)", "µs", higher_is_better=False, ratios=False),
            Metric("p99", "p99 (µs)", "µs", higher_is_better=False, ratios=False),
            *cpu_metrics(),
        ],
        original=original,
        plot="rate",
    )


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, about=ABOUT, limits=LIMITS)
    tcpy = _table("tcpy calls/s", TCPY_ORIGINAL)
    pyts = _table("pyts calls/s", PYTS_ORIGINAL)
    section.tables += [tcpy, pyts]
    seconds = ctx.seconds(3.0, 0.3)
    section.settings = {"rounds": ctx.rounds, "seconds per run": seconds}
    measure_rows(ctx, section, TCPY_ROWS, 0, seconds, lambda row, res: add_rate(tcpy, row, res))
    measure_rows(ctx, section, PYTS_ROWS, 0, seconds, lambda row, res: add_rate(pyts, row, res))
    for table, original in ((tcpy, TCPY_ORIGINAL), (pyts, PYTS_ORIGINAL)):
        for row in table.rows:
            ratio = table.ratio(row.label, original, "rate")
            if row.ours and ratio is not None:
                section.notes.append(f"{row.label}: {ratio:.2f}\u00d7 the original's calls/s.")
    return section
