"""dataserve.core.pieces: large bodies decoded a piece at a time, to the same value."""

from __future__ import annotations

import io
from typing import Any

import msgpack
import numpy as np
import orjson
import pytest

from dataserve.core.pieces import STEP, decode_text, load_npy, parse_json_array, unpack_msgpack


class Counting:
    """``orjson.loads`` that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: bytes) -> Any:
        self.calls += 1
        return orjson.loads(body)


def test_small_text_is_decoded_in_one_call() -> None:
    assert decode_text("héllo".encode(), "utf-8") == "héllo"


def test_large_text_is_decoded_in_pieces_to_the_same_string() -> None:
    text = ("é" + "a" * 1000 + "€") * (3 * STEP // 1000)
    body = text.encode("utf-8")
    assert len(body) > 2 * STEP
    assert decode_text(body, "utf-8") == text  # multi-byte characters across piece ends


def test_a_decode_error_in_a_large_body_says_where_in_the_whole_body() -> None:
    where = STEP + 12345
    body = b"a" * where + b"\xff" + b"b" * STEP
    with pytest.raises(UnicodeDecodeError) as info:
        decode_text(body, "utf-8")
    assert (info.value.start, info.value.end) == (where, where + 1)
    assert info.value.object == body


def test_a_small_json_body_is_parsed_in_one_call() -> None:
    parse = Counting()
    assert parse_json_array(b"[1, 2]", parse) == [1, 2] and parse.calls == 1


def test_a_large_json_array_is_parsed_in_pieces_to_the_same_list() -> None:
    value = [{"i": i, "s": "x, y", "l": [i, [i]]} for i in range(120_000)]
    body = orjson.dumps(value)
    assert len(body) > 2 * STEP
    parse = Counting()
    assert parse_json_array(b"  " + body + b"\n", parse) == value
    assert parse.calls > 2


def test_a_large_json_body_that_is_not_an_array_is_parsed_whole() -> None:
    body = orjson.dumps({"k": "v" * (3 * STEP)})
    parse = Counting()
    assert parse_json_array(body, parse) == {"k": "v" * (3 * STEP)} and parse.calls == 1


def test_a_large_malformed_array_fails_as_the_whole_body_would() -> None:
    body = b"[" + b"1," * (2 * STEP) + b"oops]"
    with pytest.raises(orjson.JSONDecodeError) as pieces:
        parse_json_array(body, orjson.loads)
    with pytest.raises(orjson.JSONDecodeError) as whole:
        orjson.loads(body)
    assert str(pieces.value) == str(whole.value)


def test_msgpack_small_and_large_arrays_give_the_same_value() -> None:
    assert unpack_msgpack(msgpack.packb([1, "a"]), 10) == [1, "a"]
    value = [b"x" * 100] * (3 * STEP // 100)
    body = msgpack.packb(value)
    assert unpack_msgpack(body, len(value)) == value


def test_msgpack_limits_and_extra_data() -> None:
    with pytest.raises(ValueError):
        unpack_msgpack(msgpack.packb(list(range(20))), 10)
    body = msgpack.packb([b"x" * 100] * (3 * STEP // 100))
    with pytest.raises(msgpack.ExtraData):
        unpack_msgpack(body + b"\x01", 10**6)


def test_msgpack_options_reach_the_unpacker() -> None:
    body = msgpack.packb([[1, 2]] * (3 * STEP // 3))
    assert unpack_msgpack(body, 10**7, use_list=False)[0] == (1, 2)
    assert unpack_msgpack(body, 10**7, list_hook=tuple)[0] == (1, 2)


def npy(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, version=version, allow_pickle=False)
    return out.getvalue()


@pytest.mark.parametrize(
    "version",
    [
        (1, 0),
        (2, 0),
        (3, 0),  # a UTF-8 header: numpy reads it, from the magic on
    ],
)
def test_npy_arrays_load_as_numpy_loads_them(version: tuple[int, int]) -> None:
    array = np.arange(12, dtype="<f8").reshape(3, 4)
    loaded = load_npy(npy(array, version))
    assert loaded.dtype == array.dtype and np.array_equal(loaded, array)


def test_a_large_fortran_npy_array_is_copied_in_pieces() -> None:
    array = np.asfortranarray(np.arange(3 * STEP // 8, dtype="<i8").reshape(-1, 3))
    loaded = load_npy(npy(array))
    assert loaded.flags.f_contiguous and np.array_equal(loaded, array)


def test_npy_object_arrays_and_wrong_sizes_are_refused() -> None:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_npy(out.getvalue())
    body = npy(np.zeros(100, dtype="<u1"))
    with pytest.raises(ValueError, match="too large for its body"):
        load_npy(body[:-1])
    with pytest.raises(ValueError, match="bytes left over"):
        load_npy(body + b"\x00")


def test_an_empty_npy_array() -> None:
    loaded = load_npy(npy(np.zeros((0, 5), dtype="<f4")))
    assert loaded.shape == (0, 5)


def test_a_json_array_whose_strings_hold_brackets_is_parsed_whole_to_the_same_list() -> None:
    value = [{"s": "x,]"} for _ in range(200_000)]  # the cuts are never found: one parse
    body = orjson.dumps(value)
    assert len(body) > 2 * STEP
    assert parse_json_array(body, orjson.loads) == value
