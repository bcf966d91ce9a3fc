"""The budget for decoded JSON and msgpack: size, containers, depth and memory."""

from __future__ import annotations

import datetime
import gc
import json
import random
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgpack
import orjson
import pytest

from dataserve.core.budget import DEFAULT_BUDGET, EXPANSION, FLOOR, DecodeBudget
from dataserve.core.codec import JSON, MSGPACK, Codec, CodecRegistry, default_registry
from dataserve.core.errors import (
    CodecError,
    DataServeError,
    DecodeError,
    LimitExceeded,
    StructureTooLarge,
)
from dataserve.core.estimate import _allocated_key_share, estimate_json, estimate_msgpack
from dataserve.core.limits import DEFAULT_LIMITS, Limits, add_arguments, limits_from_args

MiB = 1024 * 1024
STRICT_KEY = "int is not allowed for map key when strict_map_key=True"
ADVICE = (
    "send large or dense data as bytes (application/octet-stream) "
    "or as a numpy array (application/x-npy)"
)


def too_costly(what: str, size: int, about: str | None) -> str:
    allowed = max(FLOOR, EXPANSION * size) / MiB
    took = f"about {about} MiB" if about is not None else "more"
    return (
        f"{what} body of {size} bytes would take {took} decoded, over the {allowed:.1f} MiB "
        f"allowed ({EXPANSION}x its size): too many small arrays, objects or numbers for its "
        f"size; {ADVICE}"
    )


# --- the limits ---------------------------------------------------------------------


def test_the_knob_is_a_limits_field_and_a_flag() -> None:
    assert DEFAULT_LIMITS.max_structured_size == 64 * MiB
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    limits = limits_from_args(parser.parse_args(["--max-structured-size", "8M"]))
    assert limits.max_structured_size == 8 * MiB
    assert DecodeBudget.from_limits(limits) == DecodeBudget(max_size=8 * MiB)


def test_a_structured_body_over_its_own_limit_is_413() -> None:
    registry = default_registry.with_limits(Limits(max_structured_size=1000))
    for media_type, body, what in (
        (JSON, b"[" + b"1," * 500 + b"1]", "JSON"),
        (MSGPACK, msgpack.packb(list(range(600))), "msgpack"),
    ):
        with pytest.raises(StructureTooLarge) as info:
            registry.decode(media_type, body)
        error = info.value
        assert error.status == 413
        assert isinstance(error, CodecError) and isinstance(error, LimitExceeded)
        assert error.message == (
            f"{what} body of {len(body)} bytes is over the limit of 1000 bytes for JSON and "
            f"msgpack (max_structured_size); {ADVICE}"
        )
    # bytes and text have only max_body_size
    assert len(registry.decode("application/octet-stream", b"x" * 5000)) == 5000


def test_with_limits_binds_the_built_in_decoders_and_leaves_user_codecs_alone() -> None:
    def decode(body: bytes, params: dict[str, str]) -> bytes:
        return body[::-1]

    mine = Codec("application/x-mine", 77, bytes, decode, None)
    registry = CodecRegistry()
    registry.register(mine)
    bound = registry.with_limits(Limits(max_structured_size=10))
    assert bound is not registry and bound.budget.max_size == 10
    assert registry.budget is DEFAULT_BUDGET
    assert bound.for_media_type("application/x-mine") is mine
    assert bound.decode("application/x-mine", b"abc" * 10) == b"cba" * 10
    assert bound.media_types == registry.media_types
    with pytest.raises(StructureTooLarge):
        bound.decode(JSON, b"[1,2,3,4,5,6]")
    with pytest.raises(StructureTooLarge):
        bound.decode_tag(5, msgpack.packb([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    assert registry.decode(JSON, b"[1,2,3,4,5,6]") == [1, 2, 3, 4, 5, 6]
    assert default_registry.with_limits(Limits()) is default_registry


def test_msgpack_containers_have_a_length_limit() -> None:
    body = b"\xdd\x00\x01\x00\x01" + b"\x00" * 65537
    with pytest.raises(StructureTooLarge) as info:
        default_registry.decode(MSGPACK, body)
    assert info.value.message == (
        "msgpack array of 65537 items is over the limit of 65536 items per array or map "
        f"(max_container_len); {ADVICE}"
    )
    body = b"\xdf\x00\x01\x00\x01" + b"\xa1a\x00" * 65537
    with pytest.raises(StructureTooLarge, match="msgpack map of 65537 items"):
        default_registry.decode(MSGPACK, body)
    # the header alone is refused: no list of 4 billion slots is made
    with pytest.raises(StructureTooLarge, match="msgpack array of 4294967295 items"):
        default_registry.decode(MSGPACK, b"\xdd\xff\xff\xff\xff")
    assert len(default_registry.decode(MSGPACK, msgpack.packb([0] * 65536))) == 65536


def test_msgpack_nesting_has_a_depth_limit() -> None:
    assert default_registry.decode(MSGPACK, b"\x91" * 63 + b"\x90") is not None
    for body in (b"\x91" * 64 + b"\x90", b"\x91" * 100_000 + b"\x90", b"\x81\xa1k" * 70 + b"\xc0"):
        with pytest.raises(DecodeError) as info:
            default_registry.decode(MSGPACK, body)
        assert info.value.message == "malformed msgpack: nested deeper than 64 levels"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x01\x02", "malformed msgpack: bytes left over after the value (a body is one value)"),
        (b"\xc1", "malformed msgpack: a byte that begins no msgpack value (such as 0xc1)"),
        (b"\x92\x01", "malformed msgpack: Unpack failed: incomplete input"),
        (b"\x81\x01\x02", f"malformed msgpack: {STRICT_KEY}"),
    ],
)  # fmt: skip
def test_malformed_msgpack_is_400(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        default_registry.decode(MSGPACK, body)
    assert info.value.message == message


def test_decode_msgpack_passes_unpackb_options_and_the_callers_errors() -> None:
    budget = DecodeBudget()
    stamp = msgpack.packb(
        datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc), datetime=True
    )
    assert budget.decode_msgpack(stamp, timestamp=3).year == 2024
    assert budget.decode_msgpack(msgpack.packb(b"\xff", use_bin_type=False), raw=True) == b"\xff"

    class Refused(DataServeError):
        pass

    def no_ext(code: int, data: bytes) -> Any:
        raise Refused(f"ext type {code} is not accepted")

    with pytest.raises(Refused, match="ext type 7"):
        budget.decode_msgpack(msgpack.packb(msgpack.ExtType(7, b"x")), ext_hook=no_ext)


def test_decode_json_is_the_codecs_rule_under_the_budget() -> None:
    budget = DecodeBudget(max_size=100)
    assert budget.decode_json(b'{"a": [1, 2.5, 123456789012345678901234]}') == {
        "a": [1, 2.5, 123456789012345678901234]
    }
    with pytest.raises(DecodeError, match="NaN is not a JSON number"):
        budget.decode_json(b"[NaN, 123456789012345678901234]")
    with pytest.raises(StructureTooLarge, match="over the limit of 100 bytes"):
        budget.decode_json(b"[" + b"1," * 60 + b"1]")


# --- the memory estimate --------------------------------------------------------------

# Bodies of 4 MiB: above the floor (16 MiB allowed up to 1.8 MiB), so the
# allowance is 9x the body.
SIZE = 4 * MiB


def json_of(item: bytes) -> bytes:
    return b"[" + item * (SIZE // len(item)) + b"0]"


def msgpack_of(item: bytes) -> bytes:
    # rows of at most 65536 items, as max_container_len allows
    count = SIZE // len(item)
    rows = [b"\xdd" + n.to_bytes(4, "big") + item * n for n in _rows(count)]
    return b"\xdd" + len(rows).to_bytes(4, "big") + b"".join(rows)


def _rows(count: int) -> list[int]:
    return [min(65536, count - i) for i in range(0, count, 65536)]


WORST_JSON = {
    "[[],...]": json_of(b"[],"),
    "[{},...]": json_of(b"{},"),
    '[{"":0},...]': json_of(b'{"":0},'),
    "[0,...]": json_of(b"0,"),
    "[[[]],...]": json_of(b"[[]],"),
    "[-6,...]": json_of(b"-6,"),
    '["ab",...]': json_of(b'"ab",'),
    '{"k0":0,...}': b"{" + b",".join(b'"%x":0' % i for i in range(SIZE // 9)) + b"}",
}
WORST_MSGPACK = {
    "\\x90 * n": msgpack_of(b"\x90"),
    "\\x80 * n": msgpack_of(b"\x80"),
    "uint16 * n": msgpack_of(b"\xcd\x01\x01"),
    "\\xe0 * n (-32)": msgpack_of(b"\xe0"),
    "fixstr 'ab' * n": msgpack_of(b"\xa2ab"),
    "{'':0} * n": msgpack_of(b"\x81\xa0\x00"),
}


@pytest.mark.parametrize("name", WORST_JSON)
def test_worst_json_shapes_are_413_above_the_floor(name: str) -> None:
    body = WORST_JSON[name]
    cost = estimate_json(body, DEFAULT_BUDGET.allowance(len(body)))
    assert cost > EXPANSION * len(body)
    with pytest.raises(StructureTooLarge) as info:
        default_registry.decode(JSON, body)
    assert info.value.message == too_costly("JSON", len(body), f"{cost / MiB:.1f}")


@pytest.mark.parametrize("name", WORST_MSGPACK)
def test_worst_msgpack_shapes_are_413_above_the_floor(name: str) -> None:
    body = WORST_MSGPACK[name]
    with pytest.raises(StructureTooLarge) as info:
        default_registry.decode(MSGPACK, body)
    assert info.value.message == too_costly("msgpack", len(body), None)


def test_below_the_floor_any_shape_decodes() -> None:
    # 16 MiB may always be taken: a 200 KiB body of empty arrays is fine.
    body = b"[" + b"[]," * 70_000 + b"[]]"
    assert len(default_registry.decode(JSON, body)) == 70_001
    body = msgpack.packb([[] for _ in range(60_000)])
    assert len(default_registry.decode(MSGPACK, body)) == 60_000


def records(count: int) -> list[dict[str, Any]]:
    rnd = random.Random(7)
    return [
        {
            "id": 100_000 + i,
            "name": f"user{i}",
            "email": f"user{i}@example.com",
            "score": rnd.random() * 100,
            "active": i % 2 == 0,
            "tags": ["a", "b"],
            "manager": None,
        }
        for i in range(count)
    ]


def _floats(seed: int, count: int) -> list[float]:
    rnd = random.Random(seed)
    return [rnd.random() for _ in range(count)]


ORDINARY: dict[str, Callable[[], Any]] = {
    "records": lambda: records(SIZE // 130),
    "floats": lambda: _floats(1, SIZE // 19),
    "matrix": lambda: [
        [round(random.Random(i).gauss(100, 30), 3) for _ in range(100)] for i in range(SIZE // 800)
    ],
    "ints": lambda: list(range(10**9, 10**9 + SIZE // 12)),
    "text": lambda: ["Lorem ipsum, dolor sit amet: " * 20] * (SIZE // 600),
    "big ids": lambda: [2**64 + i for i in range(SIZE // 22)],
}


@pytest.mark.slow  # megabytes of data measured with tracemalloc
@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_data_above_the_floor_decodes(name: str) -> None:
    value = ORDINARY[name]()
    body = json.dumps(value).encode()
    assert len(body) > 2 * MiB
    assert default_registry.decode(JSON, body) == value
    if name not in ("big ids", "records"):  # msgpack: 64-bit ints; rows of 65536
        packed = msgpack.packb(value if len(value) <= 65536 else _chunks(value))
        assert default_registry.decode(MSGPACK, packed) == msgpack.unpackb(packed)
    if name == "records":
        packed = msgpack.packb(_chunks(value))
        assert default_registry.decode(MSGPACK, packed) == _chunks(value)


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + 65536] for i in range(0, len(items), 65536)]


def _traced(decode: Callable[[], Any]) -> int:
    """Bytes of Python objects ``decode`` leaves allocated (pymalloc rounding aside)."""
    gc.collect()
    tracemalloc.start()
    try:
        value = decode()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del value
    return current


# built when a test asks (not at collection)
MSGPACK_SHAPES: dict[str, Callable[[], bytes]] = {
    **{name: (lambda body=body: body) for name, body in WORST_MSGPACK.items()},
    "records": lambda: msgpack.packb(_chunks(records(20_000))),
    "floats": lambda: msgpack.packb(_chunks(_floats(2, 200_000))),
    "strings": lambda: msgpack.packb(_chunks([f"string number {i}" for i in range(100_000)])),
    "distinct keys": lambda: msgpack.packb(
        [{f"k{i}-{j}": j for j in range(5)} for i in range(20_000)]
    ),
    "bins": lambda: msgpack.packb(_chunks([bytes([i % 256]) * (i % 40) for i in range(100_000)])),
    "exts": lambda: msgpack.packb(_chunks([msgpack.ExtType(1, b"ab") for i in range(100_000)])),
}


@pytest.mark.slow  # megabytes of data measured with tracemalloc
@pytest.mark.parametrize("name", MSGPACK_SHAPES)
def test_the_msgpack_walk_is_an_upper_bound_of_what_unpackb_allocates(name: str) -> None:
    body = MSGPACK_SHAPES[name]()
    estimate = estimate_msgpack(body)
    traced = _traced(lambda: msgpack.unpackb(body, max_array_len=65536, max_map_len=65536))
    # traced sizes are the sizes asked for; pymalloc rounds them up to 16
    # (and tracemalloc counts a little of its own: 1%)
    assert traced <= 1.01 * estimate and estimate <= 1.6 * traced + 4096, (traced, estimate)


JSON_SHAPES: dict[str, Callable[[], bytes]] = {
    **{k: (lambda v=v: v) for k, v in WORST_JSON.items() if k != '{"k0":0,...}'},
    "records": lambda: orjson.dumps(records(20_000)),
    "floats": lambda: orjson.dumps(_floats(3, 200_000)),
    "text": lambda: orjson.dumps(["x" * 200] * 10_000),
}


@pytest.mark.slow  # megabytes of data measured with tracemalloc
@pytest.mark.parametrize("name", JSON_SHAPES)
def test_the_json_estimate_covers_the_objects_orjson_makes(name: str) -> None:
    # tracemalloc sees the Python objects (not orjson's own parse tree, which
    # the estimate adds): the estimate must cover them.
    body = JSON_SHAPES[name]()
    traced = _traced(lambda: orjson.loads(body))
    assert traced <= estimate_json(body), traced


def test_keys_shared_by_records_are_not_charged_as_distinct_strings() -> None:
    shared = orjson.dumps(records(40_000))
    distinct = orjson.dumps([{f"k{i}-{j}": 0 for j in range(7)} for i in range(40_000)])
    long_keys = orjson.dumps([{"k" * 70: i} for i in range(40_000)])  # orjson caches <= 64
    assert _allocated_key_share(shared) < 0.02
    assert _allocated_key_share(distinct) == 1.0
    assert _allocated_key_share(long_keys) == 1.0
