"""A hypothesis state machine for any sans-IO protocol in ``rawproto.proto``.

The machine plays the peer. Its rules queue bytes (units of a valid stream,
each with the event or error it must give, or garbage, or a corrupted byte),
deliver what is queued to the connection in pieces of random size, and
close. The connection is driven by the protocol's fuzz driver
(``fuzz/fuzz_<name>.py``), which answers events as a user of the protocol
would. After every step:

* the trace so far equals the trace of a fresh connection fed everything
  delivered in one piece (so no split point changes what the parser sees;
  where a valid peer pauses, ``SILENCE``, both read in two pieces);
* while the stream is valid, the events and errors are exactly the ones its
  units predict, each as soon as its last byte has arrived;
* nothing but the protocol's ``RemoteProtocolError`` ever came out (anything
  else escapes ``Run`` and fails the test), and the driver's checks of the
  connection's state hold.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dataserve.core.errors import RemoteProtocolError
from fuzz._stream import SILENCE, Driver, Entry, Run, Unit, assert_same, ev, project, run
from rawproto.proto.base import NEED_DATA, ConnectionClosed

#: Bounded: the whole directory runs in well under a minute.
SETTINGS = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class StreamMachine(RuleBasedStateMachine):
    """Subclasses set ``driver``, ``client`` and ``units`` (a strategy of unit
    lists), and queue the opening in an ``@initialize`` rule."""

    driver: ClassVar[Driver]
    client: ClassVar[bool] = False
    units: ClassVar[st.SearchStrategy[list[Unit]]]

    def __init__(self) -> None:
        super().__init__()
        self.run = Run(self.driver, self.client)
        self.stream = bytearray()  # every byte queued, delivered or not
        self.delivered = 0
        #: (offset at which it is due, projected entry) for a valid stream
        self.expected: list[tuple[int, Entry]] = []
        #: Offsets after which the peer pauses: never delivered in one read.
        self.pauses: list[int] = []
        self.valid = True  # the stream is what a well-behaved peer sends
        self.ended = False  # a fatal error is due: nothing after it is read
        self.eof = False

    # --- helpers for subclasses ---------------------------------------------------

    def queue(self, units: list[Unit]) -> None:
        for piece, entry in units:
            self.stream += piece
            if entry == SILENCE:
                self.pauses.append(len(self.stream))
                continue
            if entry is None or not self.valid or self.ended:
                continue
            self.expected.append((len(self.stream), entry))
            if entry[0] == "error" and entry[2]:
                self.ended = True

    def closing(self) -> list[Entry]:
        """What a valid stream gives at EOF (after its last unit)."""
        return [ev(ConnectionClosed())]

    # --- the peer's moves -----------------------------------------------------------

    @precondition(lambda self: not self.eof)
    @rule(data=st.data())
    def peer_sends(self, data: Any) -> None:
        self.queue(data.draw(self.units))

    @precondition(lambda self: not self.eof)
    @rule(junk=st.binary(min_size=1, max_size=24))
    def peer_sends_garbage(self, junk: bytes) -> None:
        self.valid = False
        self.stream += junk

    @precondition(lambda self: self.delivered < len(self.stream))
    @rule(data=st.data())
    def corrupt_a_byte(self, data: Any) -> None:
        i = data.draw(st.integers(self.delivered, len(self.stream) - 1), label="index")
        self.stream[i] ^= data.draw(st.integers(1, 255), label="xor")
        self.valid = False

    def _next_pause(self) -> int:
        return min((at for at in self.pauses if at > self.delivered), default=len(self.stream))

    def _deliver(self, n: int) -> None:
        chunk = bytes(self.stream[self.delivered : self.delivered + n])
        self.delivered += n
        self.run.feed(chunk)

    @precondition(lambda self: self.delivered < len(self.stream))
    @rule(data=st.data())
    def deliver(self, data: Any) -> None:
        self._deliver(data.draw(st.integers(1, self._next_pause() - self.delivered), label="bytes"))

    @precondition(lambda self: self.delivered < len(self.stream))
    @rule()
    def deliver_everything(self) -> None:
        # Everything up to the peer's next pause, in one read.
        self._deliver(self._next_pause() - self.delivered)

    @precondition(lambda self: self.delivered == len(self.stream) and not self.eof)
    @rule()
    def peer_closes(self) -> None:
        self.eof = True
        if self.valid and not self.ended:
            self.expected += [(len(self.stream), entry) for entry in self.closing()]
        self.run.feed(None)

    @precondition(lambda self: self.eof)
    @rule()
    def poll_after_close(self) -> None:
        # Once the peer has closed, the connection has nothing new to say:
        # the fatal error again, or NEED_DATA (ConnectionClosed came once).
        conn = self.run.conn
        if self.run.error is not None:
            with pytest.raises(RemoteProtocolError) as raised:
                conn.next_event()
            assert raised.value is self.run.error
        else:
            assert conn.next_event() is NEED_DATA

    # --- properties -------------------------------------------------------------------

    @invariant()
    def same_as_one_feed(self) -> None:
        delivered = bytes(self.stream[: self.delivered])
        cuts = [at for at in self.pauses if at <= self.delivered]
        whole = run(self.driver, delivered, cuts, eof=self.eof, client=self.client)
        assert_same(whole, self.run.trace, "fed in pieces")

    @invariant()
    def valid_stream_gives_what_it_predicts(self) -> None:
        if self.valid:
            due = [entry for at, entry in self.expected if at <= self.delivered]
            assert project(self.run.trace) == due
