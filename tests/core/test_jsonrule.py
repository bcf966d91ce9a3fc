"""JSON numbers and strings follow one rule, whichever parser runs; NaN is never sent."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataserve.core.codec import default_registry
from dataserve.core.errors import DecodeError, EncodeError
from dataserve.core.jsonrule import _parse_exact, parse_json

np = pytest.importorskip("numpy")

# A 20-digit run inside a string: it made the decoder switch to the standard
# library, which took NaN, Infinity, 1e400 and lone surrogates.
UNRELATED = b', "12345678901234567890"'
UNEXPECTED = "malformed JSON: unexpected character, expected a JSON value"
INFINITY = "malformed JSON: number is infinity when parsed as double"
NO_HIGH = "malformed JSON: invalid high surrogate in string"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"NaN", f"{UNEXPECTED}: line 1 column 2 (char 1)"),
        (b"Infinity", f"{UNEXPECTED}: line 1 column 2 (char 1)"),
        (b"-Infinity", "malformed JSON: no digit after sign: line 1 column 3 (char 2)"),
        (b"1e400", f"{INFINITY}: line 1 column 2 (char 1)"),
        (b"-2e308", f"{INFINITY}: line 1 column 2 (char 1)"),
        (b'"\\ud800"', "malformed JSON: no low surrogate in string: line 1 column 3 (char 2)"),
        (b'"\\udc00"', f"{NO_HIGH}: line 1 column 3 (char 2)"),
    ],
)  # fmt: skip
def test_the_verdict_does_not_depend_on_unrelated_content(value: bytes, message: str) -> None:
    for body in (b"[" + value + b"]", b"[" + value + UNRELATED + b"]"):
        with pytest.raises(DecodeError) as info:
            default_registry.decode("application/json", body)
        assert info.value.status == 400
        assert info.value.message == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"NaN", "malformed JSON: NaN is not a JSON number (RFC 8259, section 6)"),
        (b"Infinity", "malformed JSON: Infinity is not a JSON number (RFC 8259, section 6)"),
        (b"-Infinity", "malformed JSON: -Infinity is not a JSON number (RFC 8259, section 6)"),
        (b"1e400", "malformed JSON: number 1e400 is too large for a float (JSON has no Infinity)"),
        (b'"\\ud800"', "malformed JSON: a \\u escape is a lone surrogate, not a character "
         "(RFC 8259, section 8.2)"),
        (b'"\\\\\\ud800"', "malformed JSON: a \\u escape is a lone surrogate, not a character "
         "(RFC 8259, section 8.2)"),
        (b'"\\udc00\\ud800"', "malformed JSON: a \\u escape is a lone surrogate, not a character "
         "(RFC 8259, section 8.2)"),
        (b'"\xff"', "malformed JSON: not valid UTF-8: invalid start byte at byte 24"),
    ],
)  # fmt: skip
def test_a_real_big_integer_takes_the_exact_path_under_the_same_rule(
    value: bytes, message: str
) -> None:
    body = b"[12345678901234567890, " + value + b"]"
    with pytest.raises(DecodeError) as info:
        default_registry.decode("application/json", body)
    assert info.value.message == message


def test_what_the_rule_accepts_on_the_exact_path() -> None:
    body = (
        b'[18446744073709551616, -9223372036854775809, 1e308, 1e-400, -0, "\\ud83d\\ude00", '
        b'"\\\\ud800", 0.1]'
    )
    assert default_registry.decode("application/json", body) == [
        2**64,
        -(2**63) - 1,
        1e308,
        0.0,
        0,
        "\U0001f600",
        "\\ud800",  # an escaped backslash, then text: not an escape
        0.1,
    ]
    # -9223372036854775809 is the first integer orjson would have rounded
    assert orjson.loads(b"-9223372036854775809") != -(2**63) - 1


def test_a_19_digit_id_stays_on_the_fast_path_and_exact() -> None:
    assert default_registry.decode("application/json", b"[1234567890123456789]") == [
        1234567890123456789
    ]


# JSON-like text: valid documents with the values the two parsers used to
# disagree on, and strings that look like numbers.
_ATOMS = st.sampled_from(
    [
        "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e308", "1E-400", "-0", "0.5",
        "12345678901234567890", "-9223372036854775809", "18446744073709551615", "1" * 30,
        '"\\ud800"', '"\\udc00"', '"\\ud83d\\ude00"', '"\\\\ud800"', '"12345678901234567890"',
        '"\\u00e9"', "true", "null", '"a\\"b"', "1.5e3",
    ]
)  # fmt: skip
_DOCUMENTS = st.recursive(
    _ATOMS,
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
        | st.lists(inner, max_size=3).map(
            lambda xs: "{" + ",".join(f'"k{i}":{x}' for i, x in enumerate(xs)) + "}"
        )
    ),
    max_leaves=8,
)


def _verdict(parse: Any, body: bytes) -> tuple[bool, Any]:
    try:
        return True, parse(body)
    except (DecodeError, ValueError):
        return False, None


@given(_DOCUMENTS)
def test_both_parsers_give_the_same_verdict(document: str) -> None:
    body = document.encode()
    fast_ok, fast = _verdict(orjson.loads, body)
    exact_ok, exact = _verdict(_parse_exact, body)
    assert fast_ok == exact_ok, (document, fast, exact)
    if fast_ok and not any(big in document for big in ("1" * 20, "-9223372036854775809")):
        assert fast == exact
    # and the decoder's verdict is theirs
    assert _verdict(parse_json, body)[0] == fast_ok


# --- encoding: NaN and Infinity are never sent as null ------------------------------


@dataclasses.dataclass
class Reading:
    low: float
    high: float


class Scale(enum.Enum):
    BROKEN = math.nan


@pytest.mark.parametrize(
    ("value", "what", "where"),
    [
        (math.nan, "NaN", "the value"),
        (math.inf, "Infinity", "the value"),
        ([1.0, -math.inf], "-Infinity", "the value[1]"),
        ({"a": [None, {"b": math.nan}]}, "NaN", "the value['a'][1]['b']"),
        ((1, math.nan), "NaN", "the value[1]"),
        ([2**70, math.nan], "NaN", "the value[1]"),  # the standard library's path
        ({"x": np.array([[1.0, 2.0], [np.nan, 3.0]])}, "NaN", "the value['x'][1][0]"),
        ([np.float32("inf")], "Infinity", "the value[0]"),
        ([Reading(1.0, math.nan)], "NaN", "the value[0].high"),
        ({"unit": Scale.BROKEN}, "NaN", "the value['unit'].value"),
    ],
)
def test_non_finite_floats_are_refused_with_where_they_are(
    value: object, what: str, where: str
) -> None:
    with pytest.raises(EncodeError) as info:
        default_registry.encode(value)
    assert info.value.status == 500
    assert info.value.message == (
        f"{what} cannot be sent as JSON (at {where}): JSON has no NaN or Infinity "
        "(RFC 8259, section 6); send None or a string instead, or the numbers as "
        "a numpy array (application/x-npy)"
    )


@pytest.mark.parametrize(
    ("value", "body"),
    [
        ([None, "null", 1.5], b'[null,"null",1.5]'),
        ({"n": None, "name": "nan"}, b'{"n":null,"name":"nan"}'),
        ([2**70, None, 0.5], b"[1180591620717411303424,null,0.5]"),
        ([1e308, -0.0, 5e-324], b"[1e+308,-0.0,5e-324]"),
    ],
)
def test_finite_values_and_null_are_still_sent(value: object, body: bytes) -> None:
    assert default_registry.encode(value) == ("application/json", body)
    assert default_registry.decode("application/json", body) == json.loads(body)


def test_a_numpy_array_with_nan_still_travels_as_npy() -> None:
    media_type, body = default_registry.encode(np.array([1.0, np.nan]))
    assert media_type == "application/x-npy"
    assert np.isnan(default_registry.decode(media_type, body)[1])
