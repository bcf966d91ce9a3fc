"""The native framing's parser as a state machine, as a server and as a client."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize

from fuzz import fuzz_native as target
from rawproto.proto.native import KIND_AUTH, KIND_ERROR, KIND_REPLY, KIND_REQUEST

from .machine import SETTINGS, StreamMachine

# Stateful fuzzing runs hundreds of examples; CI runs them.
pytestmark = pytest.mark.slow

IDS = st.integers(1, 0xFFFFFFFF)
TAGS = st.integers(0, 255)
BODIES = st.binary(max_size=48)
# Kinds a server skips: the client's own, AUTH after the first frame, unknown ones.
OTHER_KINDS = st.one_of(
    st.sampled_from([KIND_REPLY, KIND_ERROR, KIND_AUTH]),
    st.integers(0, 255).filter(lambda k: k != KIND_REQUEST),
)
NOT_UTF8 = st.sampled_from([b"\xff", b"\xc3", b"a\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
OVERSIZE = st.integers(target.MAX_FRAME + 1, 0xFFFFFFFF)


class NativeServerMachine(StreamMachine):
    driver = target.DRIVER
    units = st.one_of(
        st.builds(target.request, IDS, st.text(max_size=12), TAGS, BODIES),
        st.builds(target.not_for_server, OTHER_KINDS, st.integers(0, 0xFFFFFFFF), BODIES),
        st.builds(target.bad_resource, IDS, NOT_UTF8, BODIES),
        st.builds(target.oversize, OVERSIZE),
        st.just(target.zero_request_id()),
    )

    @initialize(data=st.data())
    def preface(self, data: Any) -> None:
        # The first frame may be AUTH, which a server without a token ignores.
        first = data.draw(
            st.builds(target.auth, BODIES) | st.builds(target.request, IDS, st.text(max_size=12))
        )
        self.queue(target.opening() + first)


class NativeTokenMachine(NativeServerMachine):
    """A server that requires a token: the first frame decides, whatever the cuts."""

    driver = target.TOKEN_DRIVER

    @initialize(data=st.data())
    def preface(self, data: Any) -> None:
        first = data.draw(
            st.one_of(
                st.just(target.auth(target.TOKEN, target.TOKEN)),
                st.builds(target.auth, BODIES, st.just(target.TOKEN)),  # mostly wrong
                st.builds(
                    target.auth,
                    st.binary(min_size=16_384, max_size=16_400),  # over the pre-auth cap
                    st.just(target.TOKEN),
                ),
                st.builds(target.unauthenticated, IDS, BODIES),
            )
        )
        self.queue(target.opening() + first)


class NativeClientMachine(StreamMachine):
    driver = target.DRIVER
    client = True
    units = st.one_of(
        st.builds(target.reply, st.integers(0, 0xFFFFFFFF), TAGS, BODIES),
        st.builds(target.error, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF), st.text()),
        st.builds(target.not_for_client, IDS, BODIES),
        st.builds(target.oversize, OVERSIZE, st.just(KIND_REPLY)),
    )

    @initialize()
    def preface(self) -> None:
        self.queue(target.opening())


TestNativeServer = NativeServerMachine.TestCase
TestNativeServer.settings = SETTINGS
TestNativeToken = NativeTokenMachine.TestCase
TestNativeToken.settings = SETTINGS
TestNativeClient = NativeClientMachine.TestCase
TestNativeClient.settings = SETTINGS
