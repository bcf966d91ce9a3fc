"""pyts' parser as a state machine: one document, found as its bytes arrive."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize

from fuzz import fuzz_pyts as target
from fuzz._stream import Entry

from .machine import SETTINGS, StreamMachine

# Stateful fuzzing runs hundreds of examples; CI runs them.
pytestmark = pytest.mark.slow

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    # Brackets, quotes and backslashes in strings must not fool the scanner.
    st.text(alphabet=st.sampled_from('{}[]"\\: ,a\u00e9\u2603\n'), max_size=8),
)
BODIES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
WHITESPACE = st.text(alphabet=" \t\r\n", max_size=3).map(str.encode)
# Bytes that look like JSON: the scanner's every state, and broken documents.
SOUP = st.lists(
    st.sampled_from([b"{", b"}", b"[", b"]", b'"', b"\\", b":", b",", b" ", b"1", b"a", b"\xff"]),
    max_size=30,
).map(b"".join)


class PytsMachine(StreamMachine):
    driver = target.DRIVER
    # After the document, a peer's further bytes are ignored: any bytes.
    units = st.binary(max_size=16).map(lambda junk: [(junk, None)])

    def closing(self) -> list[Entry]:
        return []  # the document is complete: EOF says nothing more

    @initialize(data=st.data())
    def document(self, data: Any) -> None:
        if data.draw(st.booleans(), label="valid"):
            ws = data.draw(WHITESPACE, label="whitespace")
            endpoint = "/" + data.draw(st.text(max_size=6), label="endpoint")
            (unit,) = target.request(endpoint, data.draw(BODIES, label="body"))
            self.queue([(ws, None), unit])
        else:
            self.valid = False
            self.stream += b"{" + data.draw(SOUP, label="soup")


class PytsClientMachine(PytsMachine):
    client = True

    @initialize(data=st.data())
    def document(self, data: Any) -> None:
        status = data.draw(st.sampled_from([200, 404, 500]), label="status")
        self.queue(target.response(status, data.draw(BODIES, label="body")))


TestPyts = PytsMachine.TestCase
TestPyts.settings = SETTINGS
TestPytsClient = PytsClientMachine.TestCase
TestPytsClient.settings = SETTINGS
