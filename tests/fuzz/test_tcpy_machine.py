"""tcpy's parser as a state machine: requests, a handler's mid-exchange reads, limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st

from fuzz import fuzz_tcpy as target

from .machine import SETTINGS, StreamMachine

# Stateful fuzzing runs hundreds of examples; CI runs them.
pytestmark = pytest.mark.slow

# Keys tcpy gives a meaning to stay out of generated maps.
KEYS = st.text(max_size=6).filter(lambda k: k not in ("cmd", "__datetime__"))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
)


def values(depth: int) -> st.SearchStrategy[Any]:
    """msgpack values nested at most ``depth`` levels (all within the limits)."""
    if depth == 0:
        return SCALARS
    inner = values(depth - 1)
    return st.one_of(SCALARS, st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3))


PARAMS = st.dictionaries(KEYS, values(2), max_size=4)
COMMANDS = st.one_of(st.just("chat"), st.text(min_size=1, max_size=8))


class TcpyServerMachine(StreamMachine):
    driver = target.DRIVER
    units = st.one_of(
        st.builds(target.request, COMMANDS, PARAMS, values(2)),
        st.builds(target.no_command, PARAMS),
        st.builds(target.not_a_map, values(2).filter(lambda v: not isinstance(v, dict))),
        st.builds(target.oversize, st.integers(target.LIMITS.max_frame_size + 1, 0xFFFFFFFF)),
    )


class TcpyClientMachine(StreamMachine):
    driver = target.DRIVER
    client = True
    units = st.one_of(
        st.builds(target.message, values(3)),
        st.builds(target.oversize, st.integers(target.LIMITS.max_frame_size + 1, 0xFFFFFFFF)),
    )


TestTcpyServer = TcpyServerMachine.TestCase
TestTcpyServer.settings = SETTINGS
TestTcpyClient = TcpyClientMachine.TestCase
TestTcpyClient.settings = SETTINGS
