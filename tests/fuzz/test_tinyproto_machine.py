"""tinyproto's parser as a state machine: handshake, announces, answers, payloads."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize

from fuzz import fuzz_tinyproto as target
from rawproto.proto.tinyproto import SC_CONFLICT, SC_CONLIMIT, SC_OK, SC_REFUSED

from .machine import SETTINGS, StreamMachine

# Stateful fuzzing runs hundreds of examples; CI runs them.
pytestmark = pytest.mark.slow

# The peer's answers to the driver's own announces: accept, or refuse with
# any code that cannot begin a length (0xf1 to 0xfe).
ANSWERS = st.sampled_from([SC_OK, SC_OK, SC_REFUSED, SC_CONLIMIT, SC_CONFLICT, 0xF1])
PAYLOADS = st.binary(max_size=target.MAX_MESSAGE + 8)
OVERSIZE = st.builds(target.oversize, st.integers(target.MAX_MESSAGE + 1, 0xFFFFFFFF))


class TinyProtoMachine(StreamMachine):
    """Random bytes and corruption on top of valid messages (the driver never
    announces, so no byte's meaning depends on a pause)."""

    driver = target.DRIVER
    units = st.one_of(st.builds(target.message, PAYLOADS), OVERSIZE)

    @initialize()
    def handshake(self) -> None:
        self.queue(target.opening())


class AnnouncingMachine(StreamMachine):
    """Valid streams only, with the driver announcing messages of its own: the
    peer's answers, and its next announce crossing ours, cut anywhere."""

    driver = target.ANNOUNCING
    units = st.one_of(st.builds(target.message, PAYLOADS, ANSWERS, st.none() | PAYLOADS), OVERSIZE)

    @initialize()
    def handshake(self) -> None:
        self.queue(target.opening())

    # Garbage where our answer is due would be read as an answer or a crossing
    # announce the units cannot predict; TinyProtoMachine covers garbage.
    def peer_sends_garbage(self, junk: bytes) -> None:
        raise AssertionError("not a rule here")

    def corrupt_a_byte(self, data: object) -> None:
        raise AssertionError("not a rule here")


TestTinyProto = TinyProtoMachine.TestCase
TestTinyProto.settings = SETTINGS
TestAnnouncing = AnnouncingMachine.TestCase
TestAnnouncing.settings = SETTINGS
