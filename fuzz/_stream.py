"""Driving a sans-IO protocol connection through one byte stream, and comparing runs.

A *driver* knows one protocol: it makes the connection, answers events the
way a server or client using it would (deterministically, from the event
alone, so the answer never depends on how the bytes were split) and checks
the connection's state between reads. ``run`` feeds a stream to a fresh
connection in the pieces it is told and records a *trace*: every event, every
error and every byte sent. The properties every parser must have:

* the trace does not depend on where the stream was cut (one feed, random
  cuts, byte by byte);
* reading raises nothing but ``RemoteProtocolError`` (the protocol's typed
  error, ``FrameError`` here); anything else escapes and is a crash;
* a fatal error is raised again by every later ``next_event`` (the same
  object), ``ConnectionClosed`` comes at most once, and the driver's state
  checks hold after every read.

A fuzz input is ``flags, seed, stream...``: bit 0 of ``flags`` says the
stream ends with EOF, bit 1 that the connection plays the client; ``seed``
chooses the random cuts.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Protocol

from dataserve.core.errors import RemoteProtocolError
from rawproto.proto.base import NEED_DATA, ConnectionClosed, Event

__all__ = [
    "BYTEWISE_MAX",
    "SILENCE",
    "Driver",
    "Entry",
    "Run",
    "Unit",
    "assert_same",
    "check_stream",
    "decode_input",
    "encode_input",
    "err",
    "ev",
    "project",
    "random_cuts",
    "run",
    "stream_of",
]

#: One line of a trace: ``("event", repr)``, ``("error", type, status, fatal)``,
#: ``("error_reply", status)`` or ``("sent", bytes)``.
Entry = tuple[Any, ...]
#: A piece of a valid stream and the entry (projected, see ``project``) that
#: its last byte makes due, if any.
Unit = tuple[bytes, Entry | None]
#: The entry of a unit ``(b"", SILENCE)``: the peer sends nothing more until
#: what it sent so far has been read (a pause, so the next bytes come in a
#: later read). Where a protocol reads meaning into timing, a valid stream
#: says where the pauses are.
SILENCE: Entry = ("silence",)

#: Streams up to this long are also fed one byte at a time.
BYTEWISE_MAX = 2048


class Driver(Protocol):
    """What ``run`` needs to know about one protocol."""

    #: Whether the protocol has a client role worth fuzzing on its own.
    has_client: bool

    def new(self, client: bool) -> Any:
        """A fresh connection object."""
        ...

    def react(self, conn: Any, event: Event, run: Run) -> bytes:
        """Answer ``event`` as a user of the protocol would; the bytes sent."""
        ...

    def check(self, conn: Any, run: Run) -> None:
        """Assert what must hold of the connection's state after a read."""
        ...

    def check_error_reply(self, error: Exception, reply: bytes) -> None:
        """Assert that ``reply`` (``error_reply(error)``) is a valid answer to ``error``."""
        ...


def ev(event: Event) -> Entry:
    """The projected trace entry of an event."""
    return ("event", repr(event))


def err(status: int, fatal: bool) -> Entry:
    """The projected trace entry of an error."""
    return ("error", status, fatal)


class Run:
    """One connection fed piece by piece; ``trace`` records what happened."""

    def __init__(self, driver: Driver, client: bool = False) -> None:
        self.driver = driver
        self.client = client
        self.conn = driver.new(client)
        self.trace: list[Entry] = []
        self.events: list[Event] = []
        #: The fatal error that ended the run, if one did.
        self.error: RemoteProtocolError | None = None
        self.closed = False
        #: Counters a driver keeps about what it did (messages it announced...).
        self.notes: dict[str, int] = {}
        self._sent(self.conn.initiate())

    def note(self, key: str, add: int = 1) -> None:
        self.notes[key] = self.notes.get(key, 0) + add

    def feed(self, data: bytes | None) -> None:
        """Give the connection ``data`` (``None``: EOF) and handle what it yields."""
        if self.error is not None:
            return  # the connection would have been closed
        self.conn.receive_data(data)
        self._drain()

    def _sent(self, data: bytes) -> None:
        assert isinstance(data, bytes), f"the protocol produced {type(data).__name__}, not bytes"
        if data:
            self.trace.append(("sent", data))

    def _drain(self) -> None:
        conn = self.conn
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                fatal = bool(getattr(exc, "fatal", True))
                # The message may describe the bytes seen so far, so it is not
                # compared; the answer is checked by the driver instead.
                self.trace.append(("error", type(exc).__name__, exc.status, fatal))
                reply = conn.error_reply(exc)
                assert isinstance(reply, bytes), f"error_reply gave {type(reply).__name__}"
                self.driver.check_error_reply(exc, reply)
                if reply:
                    self.trace.append(("error_reply", exc.status))
                if fatal:
                    self.error = exc
                    self._check_stays_broken()
                    return
                continue
            if event is NEED_DATA:
                self.driver.check(conn, self)
                return
            assert isinstance(event, Event), f"next_event returned {event!r}"
            self.trace.append(("event", repr(event)))
            self.events.append(event)
            if isinstance(event, ConnectionClosed):
                assert not self.closed, "ConnectionClosed was reported twice"
                self.closed = True
            self._sent(self.driver.react(conn, event, self))

    def _check_stays_broken(self) -> None:
        try:
            again = self.conn.next_event()
        except RemoteProtocolError as exc:
            assert exc is self.error, f"after a fatal error, next_event raised {exc!r}"
        else:
            raise AssertionError(f"after a fatal error, next_event returned {again!r}")


def run(
    driver: Driver,
    stream: bytes,
    cuts: Iterable[int] = (),
    *,
    eof: bool = True,
    client: bool = False,
) -> list[Entry]:
    """Feed ``stream`` cut at ``cuts`` (increasing offsets), then EOF; the trace."""
    r = Run(driver, client)
    start = 0
    for cut in cuts:
        if start < cut:
            r.feed(stream[start:cut])
            start = cut
    if start < len(stream):
        r.feed(stream[start:])
    if eof:
        r.feed(None)
    return r.trace


def project(trace: Iterable[Entry]) -> list[Entry]:
    """What a model predicts of a trace: events and errors (status, fatal), not bytes sent."""
    out: list[Entry] = []
    for entry in trace:
        if entry[0] == "event":
            out.append(entry)
        elif entry[0] == "error":
            out.append(err(entry[2], entry[3]))
    return out


def stream_of(units: Iterable[Unit]) -> tuple[bytes, list[Entry]]:
    """The bytes of ``units`` and the projected trace they must give."""
    data = bytearray()
    expected: list[Entry] = []
    for piece, entry in units:
        data += piece
        if entry is not None and entry != SILENCE:
            expected.append(entry)
    return bytes(data), expected


def assert_same(expected: list[Entry], got: list[Entry], what: str) -> None:
    if expected == got:
        return
    i = next(
        (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
        min(len(expected), len(got)),
    )
    raise AssertionError(
        f"{what}: traces differ at entry {i}:\n"
        f"  one feed: {expected[i : i + 3]!r}\n"
        f"  {what}: {got[i : i + 3]!r}"
    )


def random_cuts(seed: int, length: int) -> list[int]:
    """Up to 16 cut points in a stream of ``length`` bytes, chosen by ``seed``."""
    if length < 2:
        return []
    rng = random.Random(seed)
    k = min(length - 1, rng.randint(1, 16))
    return sorted(rng.sample(range(1, length), k))


def encode_input(stream: bytes, *, eof: bool = True, client: bool = False, seed: int = 0) -> bytes:
    """A fuzz input (see the module docstring)."""
    return bytes([int(eof) | int(client) << 1, seed & 0xFF]) + stream


def decode_input(data: bytes) -> tuple[bool, bool, int, bytes]:
    """``(eof, client, seed, stream)`` from a fuzz input (short inputs: an empty stream)."""
    flags = data[0] if data else 1
    seed = data[1] if len(data) > 1 else 0
    return bool(flags & 1), bool(flags & 2), seed, data[2:]


def check_stream(driver: Driver, data: bytes) -> None:
    """The properties for one fuzz input: the same trace however the stream is cut."""
    eof, client, seed, stream = decode_input(data)
    client = client and driver.has_client
    whole = run(driver, stream, (), eof=eof, client=client)
    cut = run(driver, stream, random_cuts(seed, len(stream)), eof=eof, client=client)
    assert_same(whole, cut, "random cuts")
    if len(stream) <= BYTEWISE_MAX:
        bytewise = run(driver, stream, range(1, len(stream)), eof=eof, client=client)
        assert_same(whole, bytewise, "byte by byte")
