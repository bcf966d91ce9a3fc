"""The codec registry as a state machine: registrations, round trips, hostile bodies."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dataserve.core.codec import BUILTIN_CODECS, NONE_TAG, Codec, CodecRegistry
from dataserve.core.errors import CodecError, EncodeError, UnsupportedMediaType
from fuzz import fuzz_codec

from .machine import SETTINGS

# Stateful fuzzing runs hundreds of examples; CI runs them.
pytestmark = pytest.mark.slow

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    # orjson reads integers beyond 64 bits back as floats
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes()),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)
VALUES = st.one_of(JSON_VALUES, st.text(), st.binary(), ARRAYS)
# Media types as clients send them: known ones with parameters, unknown ones, junk.
CONTENT_TYPES = st.one_of(
    st.sampled_from([c for c in fuzz_codec.CONTENT_TYPES if c is not None]),
    st.sampled_from(["text/plain; charset=", "TEXT/PLAIN;;;", "application/json; x", "a/b"]),
    st.text(max_size=30),
    st.binary(max_size=30),
)


def _reverse(value: Any) -> bytes:
    return bytes(value.payload)[::-1]


class Point:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class CodecMachine(RuleBasedStateMachine):
    """A registry that users extend while hostile bodies arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = CodecRegistry()
        self.media_types = {name for c in BUILTIN_CODECS for name in (c.media_type, *c.aliases)}
        self.tags = {c.tag for c in BUILTIN_CODECS}

    @rule(name=st.from_regex(r"application/x-[a-z]{1,6}", fullmatch=True), tag=st.integers(1, 255))
    def register(self, name: str, tag: int) -> None:
        codec = Codec(
            name,
            tag,
            _reverse,
            lambda body, params: Point(body[::-1]),
            lambda value: isinstance(value, Point),
        )
        before = self.registry.media_types
        if name in self.media_types or tag in self.tags:
            with pytest.raises(ValueError, match="already registered"):
                self.registry.register(codec)
            assert self.registry.media_types == before  # a refused codec changes nothing
            return
        self.registry.register(codec)
        self.media_types.add(name)
        self.tags.add(tag)

    @rule(value=VALUES)
    def value_round_trips(self, value: Any) -> None:
        media_type, body = self.registry.encode(value)
        again = self.registry.decode(media_type, body)
        assert _same(value, again), (value, again)
        tag, body = self.registry.encode_tag(value)
        assert _same(value, self.registry.decode_tag(tag, body))

    @rule(payload=st.binary(max_size=16))
    def user_codec_wins_for_its_values(self, payload: bytes) -> None:
        users = [t for t in self.tags if t not in {c.tag for c in BUILTIN_CODECS}]
        if not users:
            with pytest.raises(EncodeError):  # JSON cannot encode it: typed, not a crash
                self.registry.encode(Point(payload))
            return
        media_type, body = self.registry.encode(Point(payload))
        assert media_type in self.media_types and body == payload[::-1]
        assert self.registry.decode(media_type, body).payload == payload

    @rule(content_type=CONTENT_TYPES, body=st.binary(max_size=64))
    def hostile_body(self, content_type: str | bytes, body: bytes) -> None:
        try:
            self.registry.decode(content_type, body)
        except CodecError as exc:
            assert exc.status in (400, 415) and exc.message

    @rule(data=st.data())
    def mutated_valid_body(self, data: Any) -> None:
        # A valid body with a few bytes changed: deep inside each decoder.
        value = data.draw(VALUES, label="value")
        media_type, body = self.registry.encode(value)
        if not body:
            return
        raw = bytearray(body)
        for _ in range(data.draw(st.integers(1, 3), label="changes")):
            i = data.draw(st.integers(0, len(raw) - 1), label="at")
            raw[i] = data.draw(st.integers(0, 255), label="byte")
        with contextlib.suppress(CodecError):
            self.registry.decode(media_type, bytes(raw))

    @rule(tag=st.integers(0, 255), body=st.binary(max_size=64))
    def hostile_tag(self, tag: int, body: bytes) -> None:
        try:
            value = self.registry.decode_tag(tag, body)
        except UnsupportedMediaType:
            assert tag not in self.tags
        except CodecError:
            assert tag in self.tags
        else:
            assert tag == NONE_TAG or tag in self.tags
            if tag == NONE_TAG:
                assert value is None

    @invariant()
    def registry_lists_what_was_registered(self) -> None:
        assert self.registry.media_types == sorted(self.media_types)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return bool(
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, (bytearray, memoryview)):
        return bool(bytes(a) == b)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b) and type(a) is type(b)


TestCodec = CodecMachine.TestCase
TestCodec.settings = SETTINGS
# numpy reads an .npy header with ast.literal_eval, which warns about a
# backslash escape it does not know in a fuzzed header's strings.
_UNKNOWN_ESCAPE = "ignore:invalid escape sequence:DeprecationWarning"
TestCodec = pytest.mark.filterwarnings(_UNKNOWN_ESCAPE)(TestCodec)
