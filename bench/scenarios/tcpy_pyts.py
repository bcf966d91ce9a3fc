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
TCPY_FLOOR = "floor: a bare uvloop protocol, connection per call"
PYTS_FLOOR = "floor: a bare uvloop protocol"

TCPY_ROWS = [
    RawRow("ours tcpy, connection per call", "tcpy-ours", "tcpy-call", ours=True),
    RawRow("ours tcpy, persistent connection", "tcpy-ours", "tcpy-persistent", ours=True),
    RawRow(TCPY_ORIGINAL, "tcpy-socketserver", "tcpy-call"),
    RawRow(TCPY_FLOOR, "tcpy-floor", "tcpy-call"),
]
PYTS_ROWS = [
    RawRow("ours pyts, connection per call", "pyts-ours", "pyts-call", ours=True),
    RawRow("ours pyts, the route marked @inline", "pyts-ours-inline", "pyts-call", ours=True),
    RawRow(PYTS_ORIGINAL, "pyts-original", "pyts-call"),
    RawRow(PYTS_FLOOR, "pyts-floor", "pyts-call"),
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
run as `python -m rawproto serve tcpy|pyts MODULE:ATTR`; the pyts rows serve the route
as seed 000 writes it (a `def` handler, run on the handler threads) and marked
`@inline` (run on the event loop). Each table has a floor row: a bare
`asyncio.Protocol` on uvloop that answers the same call with the same bytes and
nothing else (no limits, deadlines, routing or handler threads), what any asyncio
server must pay at least."""

LIMITS = """\
A connection per call costs a TCP handshake, an accept, the connection's objects and
the close, for one small message: the persistent tcpy row shows what the call itself
costs. Our servers check every limit (frame size, msgpack container length and depth,
deadlines) where the originals check none.

pyts: the floor row is below the original (0.93x, 38 us of server CPU per call
against the original's 32): an asyncio server pays the event loop's accept,
`epoll` and callbacks for each connection, where the original's blocking loop pays
`accept`, one `recv`, `sendall` and the close. So no asyncio server reaches 1x the
original here, ours included. pyts is served on a one-shot connection
(`rawproto.engine.oneshot`: a bare protocol that parses the one document, answers
with one write and closes, one timer, no session, pump or task); with the route
marked `@inline` it costs about 25 us per call more than the floor (the Request and
Response objects, routing, encoding, limits and the timer). The seed's plain `def`
route costs about 40 us more again: the hop to a handler thread and back. In a
py-spy profile of that path the loop thread is switched out in `SimpleQueue.put`,
having woken the handler thread, in 37% of its samples, and the handler thread
spends a third of its samples waiting for the GIL; with the server on one CPU each
hop is two context switches and two GIL hand-overs. A plain `def` handler runs on
the handler threads so that it may block without stopping every other connection;
the original runs it on its only thread, one client at a time.

tcpy: the floor row, a bare protocol that answers on the loop, is 1.77x the threaded
socketserver, so an asyncio server could reach the 1.2x target, but only with the
handler on the loop. 1.2x allows at most 84 us of server CPU per call (the
socketserver's 100 over 1.2): the floor's 44 us plus the 40 us hop to a handler
thread and back is those 84 us already, with nothing left for limits, the command
table, the handler object or encoding. In a `perf`
profile of our tcpy server, 27% of its samples are in the kernel's
`finish_task_switch` (the context switches of that hop) and 36% in the interpreter.
Running seed 002's handler on the loop instead, as an experiment, gave 0.96-1.15x the
socketserver; the rest is the engine's connection (session, pump, channel) that tcpy
needs because a client may keep its connection for more calls and a handler may
converse with its client (`recv` inside `execute`). Such a handler may block, so it
stays on the handler threads."""


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
