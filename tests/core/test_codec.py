from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataserve.core.codec import Codec, CodecRegistry, default_registry, parse_media_type
from dataserve.core.errors import DecodeError, EncodeError, UnsupportedMediaType

np = pytest.importorskip("numpy")


@pytest.mark.parametrize(
    ("value", "media_type", "body"),
    [
        ("héllo", "text/plain", "héllo".encode()),
        ("", "text/plain", b""),
        (b"\x00\xff", "application/octet-stream", b"\x00\xff"),
        (bytearray(b"ab"), "application/octet-stream", b"ab"),
        (memoryview(b"ab"), "application/octet-stream", b"ab"),
        ([1, 2, 3], "application/json", b"[1,2,3]"),
        ({"a": None}, "application/json", b'{"a":null}'),
        (2, "application/json", b"2"),
        (True, "application/json", b"true"),
        (None, None, b""),
    ],
)
def test_encode_detects_the_media_type(value: object, media_type: str, body: bytes) -> None:
    assert default_registry.encode(value) == (media_type, body)


def test_json_keeps_big_integers_and_int_keys() -> None:
    # orjson refuses ints beyond 64 bits; the stdlib fallback keeps them exact.
    assert default_registry.encode(2**70) == ("application/json", b"1180591620717411303424")
    assert default_registry.encode({1: "a"}) == ("application/json", b'{"1":"a"}')


def test_unencodable_value_says_its_type() -> None:
    with pytest.raises(EncodeError, match="set"):
        default_registry.encode({1, 2})


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain", b"abc", "abc"),
        ("text/plain; charset=utf-8", b"abc", "abc"),
        ("Text/Plain;Charset=latin-1", b"\xe9", "é"),
        ("application/json", b"[4,5,6]", [4, 5, 6]),
        ("application/json; charset=utf-8", b'{"a":1}', {"a": 1}),
        ("application/octet-stream", b"\x01", b"\x01"),
        (None, b"", None),
        (None, b"raw", b"raw"),
        ("application/msgpack", b"\x93\x01\x02\x03", [1, 2, 3]),
    ],
)
def test_decode(content_type: str | None, body: bytes, expected: object) -> None:
    assert default_registry.decode(content_type, body) == expected


@pytest.mark.parametrize(
    ("content_type", "body", "error", "message"),
    [
        ("application/json", b"[1,", DecodeError, "malformed JSON"),
        ("application/json", b"", DecodeError, "malformed JSON"),
        ("application/json", b"[" * 100_000, DecodeError, "malformed JSON"),
        ("text/plain", b"\xff\xfe", DecodeError, "not valid utf-8"),
        ("text/plain; charset=nope", b"x", UnsupportedMediaType, "charset 'nope'"),
        ("image/png", b"x", UnsupportedMediaType, "unsupported media type 'image/png'"),
        ("application/x-npy", b"not npy", DecodeError, "not a valid .npy"),
        ("application/msgpack", b"\xc1", DecodeError, "malformed msgpack"),
    ],
)
def test_decode_errors_say_what_is_wrong(
    content_type: str, body: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        default_registry.decode(content_type, body)


def test_numpy_round_trip_without_pickle() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    media_type, body = default_registry.encode(array)
    assert media_type == "application/x-npy"
    back = default_registry.decode(media_type, body)
    assert back.dtype == np.float32
    assert (back == array).all()


def test_numpy_object_arrays_are_refused_both_ways() -> None:
    with pytest.raises(EncodeError, match="pickle"):
        default_registry.encode(np.array([object()], dtype=object))
    # a .npy body holding an object array needs pickle to load: refused
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DecodeError, match="pickle"):
        default_registry.decode("application/x-npy", buf.getvalue())


def test_native_tags_round_trip() -> None:
    for value in ("s", b"b", [1], None):
        tag, body = default_registry.encode_tag(value)
        assert default_registry.decode_tag(tag, body) == value
    with pytest.raises(UnsupportedMediaType, match="tag 99"):
        default_registry.decode_tag(99, b"")


def test_registry_accepts_a_user_codec_ahead_of_json() -> None:
    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    def decode(body: bytes, params: dict[str, str]) -> Point:
        x, y = body.split(b",")
        return Point(int(x), int(y))

    registry = CodecRegistry()
    registry.register(
        Codec(
            "application/x-point",
            42,
            lambda p: f"{p.x},{p.y}".encode(),
            decode,
            lambda v: isinstance(v, Point),
        )
    )
    assert registry.encode(Point(1, 2)) == ("application/x-point", b"1,2")
    assert registry.encode([1]) == ("application/json", b"[1]")  # JSON still the catch-all
    assert registry.decode("application/x-point", b"3,4").y == 4
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Codec("text/plain", 43, bytes, lambda b, p: b))
    with pytest.raises(ValueError, match="tag 42 is already"):
        registry.register(Codec("x/y", 42, bytes, lambda b, p: b))


def test_parse_media_type() -> None:
    assert parse_media_type(b'Text/Plain ; Charset="UTF-8"') == ("text/plain", {"charset": "UTF-8"})
    assert parse_media_type("application/json") == ("application/json", {})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_json_values_round_trip(value: object) -> None:
    media_type, body = default_registry.encode(value)
    if value is None:
        assert media_type is None
        return
    assert default_registry.decode(media_type, body) == value


@given(st.binary())
def test_any_bytes_round_trip(value: bytes) -> None:
    assert default_registry.decode(*default_registry.encode(value)) == value


def test_json_integers_beyond_64_bits_decode_exactly() -> None:
    body = b'{"big": 18446744073709551616, "neg": -123456789012345678901234, "f": 1.5}'
    value = default_registry.decode("application/json", body)
    assert value == {"big": 2**64, "neg": -123456789012345678901234, "f": 1.5}
    assert default_registry.decode(*default_registry.encode(2**100)) == 2**100


@pytest.mark.parametrize(
    "body",
    [b"1" * 5000, b"[" * 100_000 + b"1" * 25 + b"]" * 100_000],
    ids=["H23 5000-digit integer", "H22 deep nesting with a long number"],
)
def test_hostile_json_numbers_and_nesting_are_400(body: bytes) -> None:
    with pytest.raises(DecodeError, match="malformed JSON"):
        default_registry.decode("application/json", body)
