"""tinyproto's parser as a state machine: handshake, announces, answers, payloads."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import initialize

from fuzz import fuzz_tinyproto as target
from rawproto.proto.tinyproto import SC_CONLIMIT, SC_GENERIC_ERROR, SC_OK

from .machine import SETTINGS, StreamMachine

# The peer's answers to the driver's own announces: accept, refuse, or any
# other code (0xfd, conflict, among them).
ANSWERS = st.sampled_from([SC_OK, SC_OK, SC_GENERIC_ERROR, SC_CONLIMIT, 0xFD, 0x42])
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
    peer's answers (and the pause after a refusal) cut anywhere."""

    driver = target.ANNOUNCING
    units = st.one_of(st.builds(target.message, PAYLOADS, ANSWERS), OVERSIZE)

    @initialize()
    def handshake(self) -> None:
        self.queue(target.opening())

    # Garbage after a message of ours would be an answer with no pause after
    # it; TinyProtoMachine covers garbage.
    def peer_sends_garbage(self, junk: bytes) -> None:
        raise AssertionError("not a rule here")

    def corrupt_a_byte(self, data: object) -> None:
        raise AssertionError("not a rule here")


TestTinyProto = TinyProtoMachine.TestCase
TestTinyProto.settings = SETTINGS
TestAnnouncing = AnnouncingMachine.TestCase
TestAnnouncing.settings = SETTINGS
