"""dataserve.core.estimate: the memory a JSON or msgpack body takes once decoded.

The estimates' calibration against what the decoders really allocate is in
``test_budget.py`` (tracemalloc over worst and ordinary shapes); these are
the functions' own properties: monotone in what a body holds, strings
taken out correctly, limits and malformed input.
"""

from __future__ import annotations

import msgpack
import orjson
import pytest

from dataserve.core.errors import DecodeError, StructureTooLarge
from dataserve.core.estimate import (
    ADVICE,
    BIG_DIGITS,
    NUMBER_CLASSES,
    STEP,
    estimate_json,
    estimate_msgpack,
    without_strings,
)


def test_number_classes() -> None:
    assert b"-12.5e3 x".translate(NUMBER_CLASSES) == b"2112141  "
    assert len(NUMBER_CLASSES) == 256 and BIG_DIGITS == b"1" * 19


def test_without_strings_removes_them_and_counts_them() -> None:
    stripped, strings, string_bytes = without_strings(b'{"a": "xyz", "bb": [1]}')
    assert stripped == b"{: , : [1]}"
    assert (strings, string_bytes) == (3, 1 + 3 + 2)


def test_without_strings_sees_through_escaped_quotes_and_backslashes() -> None:
    stripped, strings, _ = without_strings(rb'["a\"b", "c\\", 5]')
    assert stripped == b"[, , 5]" and strings == 2


def test_a_body_without_strings_is_returned_as_it_is() -> None:
    body = b"[1, 2, 3]"
    assert without_strings(body) == (body, 0, 0)


def test_without_strings_across_steps() -> None:
    body = b'["' + b"x" * (STEP + 10) + b'", 1]'
    stripped, strings, string_bytes = without_strings(body)
    assert stripped == b"[, 1]" and (strings, string_bytes) == (1, STEP + 10)


def test_the_json_estimate_is_at_least_the_body_and_grows_with_what_it_holds() -> None:
    small = orjson.dumps(list(range(1000, 1100)))
    large = orjson.dumps(list(range(1000, 2000)))
    assert estimate_json(small) >= len(small)
    assert estimate_json(large) > estimate_json(small)
    objects = orjson.dumps([{"k": i} for i in range(100)])
    flat = orjson.dumps([i for i in range(100)])
    assert estimate_json(objects) > estimate_json(flat)


def test_small_ints_cost_less_than_big_ones() -> None:
    assert estimate_json(b"[" + b"1," * 999 + b"1]") < estimate_json(
        b"[" + b"1000," * 999 + b"1000]"
    )


def test_big_integers_charge_the_exact_parsers_text_copy() -> None:
    near = b"[" + b"1" * 18 + b"]"
    big = b"[" + b"1" * 19 + b"]"
    assert estimate_json(big) - estimate_json(near) >= len(big)


def test_an_allowance_only_refines_what_is_over_it() -> None:
    body = orjson.dumps(["s" * 50 for _ in range(1000)])
    rough = estimate_json(body)
    assert estimate_json(body, allowance=rough) == rough  # within it: the first pass stands
    refined = estimate_json(body, allowance=1)  # over it: strings taken out, then counted
    assert refined > 0


def test_the_msgpack_estimate_grows_with_what_it_holds() -> None:
    small = msgpack.packb([b"x" * 10] * 10)
    large = msgpack.packb([b"x" * 10] * 1000)
    assert 0 < estimate_msgpack(small) < estimate_msgpack(large)
    assert estimate_msgpack(msgpack.packb({"a": 1})) > 0


def test_repeated_map_keys_are_charged_once() -> None:
    same = msgpack.packb([{"a_long_key": i} for i in range(100)])
    different = msgpack.packb([{f"a_long_key{i:03}": i} for i in range(100)])
    assert estimate_msgpack(same) < estimate_msgpack(different)


def test_the_msgpack_walk_stops_past_the_allowance() -> None:
    body = msgpack.packb([[b"x" * 100] for _ in range(1000)])
    full = estimate_msgpack(body)
    partial = estimate_msgpack(body, allowance=1000)
    assert 1000 < partial < full


def test_msgpack_containers_over_max_len_are_refused() -> None:
    body = msgpack.packb(list(range(20)))
    with pytest.raises(
        StructureTooLarge, match="array of 20 items is over the limit of 10"
    ) as info:
        estimate_msgpack(body, max_len=10)
    assert ADVICE in info.value.message
    with pytest.raises(StructureTooLarge, match="map of 20 items"):
        estimate_msgpack(msgpack.packb({str(i): i for i in range(20)}), max_len=10)


def test_msgpack_nested_deeper_than_max_depth_is_malformed() -> None:
    body = msgpack.packb([[[[1]]]])
    estimate_msgpack(body, max_depth=4)
    with pytest.raises(DecodeError, match="nested deeper than 3 levels"):
        estimate_msgpack(body, max_depth=3)


@pytest.mark.parametrize("body", [b"", b"\xc1", b"\x92\x01", b"\xdc\x00\x05\x01", b"\xda\x00"])
def test_truncated_or_bad_msgpack_returns_what_it_has(body: bytes) -> None:
    assert estimate_msgpack(body) >= 0  # unpackb says what is wrong, not the estimate
