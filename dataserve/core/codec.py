"""Type detection: Python values to (media type, bytes) and back.

One registry serves every transport. HTTP carries the media type in
``Content-Type``; the native TCP framing carries the codec's one-byte ``tag``.

Built in, in detection order:

============================  ============================  ===
value                         media type                    tag
============================  ============================  ===
``None``                      (no body)                     0
``str``                       ``text/plain``                1
``bytes``/``bytearray``/mv    ``application/octet-stream``  2
anything JSON-able            ``application/json``          3
``numpy.ndarray``             ``application/x-npy``         4
(decode only) msgpack         ``application/msgpack``       5
============================  ============================  ===

Responses carry the bare media type (``text/plain``, never with
``; charset=...``) because dataserve 0.1 clients compare it exactly; request
media types may carry parameters. pickle is never decoded: a ``.npy`` body is
loaded with ``allow_pickle=False``.

Only decoders that run in linear time are reachable from the network:
``text/plain`` accepts the UTF family, ASCII, Latin-1 and the single-byte
code pages, never punycode (quadratic), utf-7, idna or the bytes-to-bytes
codecs. JSON and msgpack bodies are checked against a budget first
(``dataserve.core.budget``): their own size limit, msgpack's container
limits, and an estimate of their decoded size. JSON follows one rule for
numbers and strings whichever parser runs (``DecodeBudget.decode_json``),
and a value with NaN or Infinity is never sent as JSON: encoding it raises
``EncodeError``.
"""

from __future__ import annotations

import codecs
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from . import pieces
from .budget import DEFAULT_BUDGET, DecodeBudget
from .errors import DecodeError, EncodeError, UnsupportedMediaType
from .jsonrule import BIG_DIGITS, DIGITS, encode_json, parse_json
from .limits import Limits

__all__ = [
    "BYTES",
    "JSON",
    "MSGPACK",
    "NONE_TAG",
    "NPY",
    "TEXT",
    "Codec",
    "CodecRegistry",
    "default_registry",
    "parse_media_type",
]

TEXT = "text/plain"
JSON = "application/json"
BYTES = "application/octet-stream"
NPY = "application/x-npy"
MSGPACK = "application/msgpack"
#: The native framing's tag for "no body" (``None``).
NONE_TAG = 0


@dataclass(frozen=True, slots=True)
class Codec:
    """One media type: how to encode values to it and decode bodies from it.

    ``matches`` says whether this codec encodes a value; codecs that only
    decode (msgpack, by default) leave it ``None``. ``tag`` is the byte the
    native TCP framing uses for this media type (1..255, unique).
    """

    media_type: str
    tag: int
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes, dict[str, str]], Any]
    matches: Callable[[Any], bool] | None = None
    aliases: tuple[str, ...] = field(default=())


def parse_media_type(value: str | bytes) -> tuple[str, dict[str, str]]:
    """``'Text/Plain; charset=UTF-8'`` -> ``('text/plain', {'charset': 'UTF-8'})``."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    base, _, rest = value.partition(";")
    params: dict[str, str] = {}
    if rest:
        for part in rest.split(";"):
            key, eq, val = part.partition("=")
            if eq:
                params[key.strip().lower()] = val.strip().strip('"')
    return base.strip().lower(), params


# --- built-in codecs ---------------------------------------------------------


def _encode_text(value: Any) -> bytes:
    try:
        return value.encode("utf-8")  # type: ignore[no-any-return]
    except UnicodeEncodeError as exc:
        # Lone surrogates (a utf-7 body decodes to them) have no UTF-8 form.
        raise EncodeError(f"str cannot be sent as UTF-8 text: {exc.reason}") from None


# Charsets a text/plain body may use: decoders that run in linear time and
# need no state beyond a few bytes. The UTF family, ASCII, Latin-1 and the
# single-byte code pages (charmap codecs: one table lookup per byte), by the
# names codecs.lookup gives them. Not: punycode (its decoder is quadratic: a
# 1 MB body took 94 s), utf-7, idna, unicode_escape and raw_unicode_escape
# (escape languages, not charsets), rot13 and the bytes-to-bytes codecs
# (zlib, bz2, base64, hex, uu, quopri: decompression bombs among them), nor
# the East Asian multi-byte codecs (stateful; not needed by any client we
# know of, and not shown to be linear for every input).
TEXT_CHARSETS: frozenset[str] = frozenset(
    {
        # the UTF family, ASCII and Latin-1
        "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
        "utf-32", "utf-32-le", "utf-32-be", "ascii", "iso8859-1",
        # single-byte code pages: every charmap codec of the standard library
        "cp037", "cp273", "cp424", "cp437", "cp500", "cp720", "cp737", "cp775",
        "cp850", "cp852", "cp855", "cp856", "cp857", "cp858", "cp860", "cp861",
        "cp862", "cp863", "cp864", "cp865", "cp866", "cp869", "cp874", "cp875",
        "cp1006", "cp1026", "cp1125", "cp1140", "cp1250", "cp1251", "cp1252",
        "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
        "iso8859-2", "iso8859-3", "iso8859-4", "iso8859-5", "iso8859-6",
        "iso8859-7", "iso8859-8", "iso8859-9", "iso8859-10", "iso8859-11",
        "iso8859-13", "iso8859-14", "iso8859-15", "iso8859-16",
        "koi8-r", "koi8-t", "koi8-u", "kz1048", "ptcp154", "tis-620",
        "hp-roman8", "palmos", "mac-arabic", "mac-croatian", "mac-cyrillic",
        "mac-farsi", "mac-greek", "mac-iceland", "mac-latin2", "mac-roman",
        "mac-romanian", "mac-turkish",
    }
)  # fmt: skip
_ACCEPTED_TEXT = (
    "a text/plain body may be UTF-8, UTF-16 or UTF-32 (-le, -be, utf-8-sig), "
    "ASCII, Latin-1 or a single-byte code page (cp1252, iso-8859-2..16, koi8-r, "
    "mac-roman, cp437...)"
)
# charset parameter as sent -> the codec's name; only accepted ones, bounded
# (clients choose these strings).
_charset_names: dict[str, str] = {"utf-8": "utf-8", "UTF-8": "utf-8", "utf8": "utf-8"}


def text_codec(charset: str) -> str:
    """The codec name for a ``text/plain`` ``charset``, if it is accepted.

    Raises ``UnsupportedMediaType`` (415) for a charset Python does not know
    and for one that is not in ``TEXT_CHARSETS``, naming what is accepted.
    """
    name = _charset_names.get(charset)
    if name is not None:
        return name
    shown = repr(charset if len(charset) <= 40 else charset[:40] + "...")
    try:
        name = codecs.lookup(charset).name.replace("_", "-")
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise UnsupportedMediaType(
            f"text/plain charset {shown} is not known; {_ACCEPTED_TEXT}"
        ) from None
    if name not in TEXT_CHARSETS:
        raise UnsupportedMediaType(
            f"text/plain charset {shown} ({name}) is not accepted: it is not a text "
            f"encoding that decodes in linear time; {_ACCEPTED_TEXT}"
        )
    if len(_charset_names) < 256:
        _charset_names[charset] = name
    return name


def _decode_text(body: bytes, params: dict[str, str]) -> str:
    charset = params.get("charset")
    name = "utf-8" if charset is None else text_codec(charset)
    try:
        return pieces.decode_text(body, name)
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"text/plain body is not valid {charset or name}: {exc.reason} at byte {exc.start}"
        ) from None


def _encode_bytes(value: Any) -> bytes:
    return bytes(value) if not isinstance(value, bytes) else value


def _decode_bytes(body: bytes, params: dict[str, str]) -> bytes:
    return body


def _decode_json(budget: DecodeBudget, body: bytes, params: dict[str, str]) -> Any:
    # The hot path of every small JSON request, inlined: one comparison, the
    # test for a 19-digit run (translate and find: a regular expression took
    # 19 us for 1 KB), then orjson. parse_json has the whole rule.
    if type(body) is not bytes:
        body = bytes(body)
    size = len(body)
    if size > budget.json_unchecked:
        budget.check_json(body)
    if size > 2 * pieces.STEP:
        return pieces.parse_json_array(body, parse_json)  # the loop's turn between pieces
    if size < 19 or body.translate(DIGITS).find(BIG_DIGITS) == -1:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:  # a ValueError
            raise DecodeError(f"malformed JSON: {exc}") from None
    return parse_json(body)


def _is_ndarray(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "ndarray" and cls.__module__ == "numpy"


def _encode_npy(value: Any) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    if value.size and not value.dtype.itemsize:
        raise EncodeError(_zero_size_message(value, "cannot be sent"))
    try:
        np.save(buf, value, allow_pickle=False)
    except ValueError as exc:
        raise EncodeError(f"numpy array cannot be sent without pickle: {exc}") from None
    return buf.getvalue()


_NPY_MAGIC = b"\x93NUMPY"


def _decode_npy(body: bytes, params: dict[str, str]) -> Any:
    try:
        import numpy  # noqa: F401 - only to say clearly that it is missing
    except ImportError:
        raise UnsupportedMediaType(
            "application/x-npy needs numpy, which is not installed on this side"
        ) from None
    if not body.startswith(_NPY_MAGIC):
        # np.load would also open a zip (.npz) archive, lazily, for the handler.
        raise DecodeError(
            "not a valid .npy body: no \\x93NUMPY magic (pickles and .npz are never loaded)"
        )
    try:
        array = pieces.load_npy(body)
    except MemoryError:
        # The header's shape is allocated before the data is read.
        raise DecodeError("the .npy header announces an array too large to allocate") from None
    except Exception as exc:  # numpy's header parser raises beyond ValueError (TokenError...)
        raise DecodeError(f"not a valid .npy body (pickle is never loaded): {exc}") from None
    if array.size and not array.dtype.itemsize:
        raise DecodeError(_zero_size_message(array, "is refused"))
    return array


def _zero_size_message(array: Any, verdict: str) -> str:
    # A dtype of 0 bytes ([('a', '<f4', (0,))], 'V0') needs no data for any
    # shape: a 100-byte body announced 3e15 elements, and np.save, like any
    # loop over them, ran for hours. (atheris found it through a round trip.)
    return (
        f"a numpy array of {array.size} elements of a zero-size dtype ({array.dtype}) "
        f"{verdict}: it holds no data, and every pass over it takes {array.size} steps"
    )


def _encode_msgpack(value: Any) -> bytes:
    import msgpack

    try:
        return msgpack.packb(value)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"cannot encode as msgpack: {exc}") from None


def _decode_msgpack(budget: DecodeBudget, body: bytes, params: dict[str, str]) -> Any:
    # Container lengths, nesting and the decoded size are checked from the
    # headers before anything is built (dataserve.core.budget);
    # strict_map_key and raw=False are the library's safe defaults; unknown
    # ext types stay opaque (ExtType).
    return budget.decode_msgpack(body)


BUILTIN_CODECS: tuple[Codec, ...] = (
    Codec(TEXT, 1, _encode_text, _decode_text, lambda v: isinstance(v, str)),
    Codec(
        BYTES,
        2,
        _encode_bytes,
        _decode_bytes,
        lambda v: isinstance(v, (bytes, bytearray, memoryview)),
    ),
    Codec(NPY, 4, _encode_npy, _decode_npy, _is_ndarray),
    # JSON is the catch-all for encoding, so it must stay last among encoders.
    Codec(JSON, 3, encode_json, functools.partial(_decode_json, DEFAULT_BUDGET), lambda v: True),
    Codec(
        MSGPACK,
        5,
        _encode_msgpack,
        functools.partial(_decode_msgpack, DEFAULT_BUDGET),
        None,
        ("application/x-msgpack",),
    ),
)
# The built-in decoders that take a budget (CodecRegistry.with_limits binds another).
_BUDGETED = (_decode_json, _decode_msgpack)


def _with_budget(codec: Codec, budget: DecodeBudget) -> Codec:
    decode = codec.decode
    if isinstance(decode, functools.partial) and decode.func in _BUDGETED:
        return replace(codec, decode=functools.partial(decode.func, budget))
    return codec


class CodecRegistry:
    """Chooses a codec for a value (encoding) or a media type (decoding).

    ``register`` adds a codec ahead of the built-in JSON catch-all, so a
    user's codec wins for the values it ``matches``. The built-in JSON and
    msgpack decoders keep to ``budget`` (the default limits' unless the
    registry came from ``with_limits``).
    """

    def __init__(self, codecs: tuple[Codec, ...] = BUILTIN_CODECS) -> None:
        #: The budget the built-in JSON and msgpack decoders keep to.
        self.budget: DecodeBudget = DEFAULT_BUDGET
        self._codecs: list[Codec] = []
        self._encoders: list[Codec] = []
        self._by_media: dict[str, Codec] = {}
        self._by_tag: dict[int, Codec] = {}
        # Exact-type fast path for the common values; filled lazily.
        self._by_type: dict[type, Codec] = {}
        for codec in codecs:
            self.register(codec)

    def register(self, codec: Codec) -> None:
        """Add a codec. Its media type, aliases and tag must be new."""
        if not 1 <= codec.tag <= 255:
            raise ValueError(f"codec tag must be 1..255, not {codec.tag}")
        names = (codec.media_type, *codec.aliases)
        for name in names:
            if name in self._by_media:
                raise ValueError(f"media type {name!r} is already registered")
        if codec.tag in self._by_tag:
            raise ValueError(f"codec tag {codec.tag} is already registered")
        codec = _with_budget(codec, self.budget)
        for name in names:
            self._by_media[name] = codec
        self._by_tag[codec.tag] = codec
        self._codecs.append(codec)
        if codec.matches is not None:
            # keep the JSON catch-all last
            if self._encoders and self._encoders[-1].media_type == JSON:
                self._encoders.insert(len(self._encoders) - 1, codec)
            else:
                self._encoders.append(codec)
        self._by_type.clear()

    def with_limits(self, limits: Limits) -> CodecRegistry:
        """This registry with its built-in JSON and msgpack decoders keeping to
        ``limits`` (``max_structured_size``, ``max_container_len``,
        ``max_depth``): what a server serving with ``limits`` decodes with.

        The same codecs in the same order; codecs a user registered are
        unchanged. Returns ``self`` when the budget is the same.
        """
        budget = DecodeBudget.from_limits(limits)
        if budget == self.budget:
            return self
        bound = CodecRegistry(codecs=())
        bound.budget = budget
        for codec in self._codecs:
            bound.register(codec)
        return bound

    @property
    def media_types(self) -> list[str]:
        return sorted(self._by_media)

    def for_value(self, value: Any) -> Codec:
        cls = type(value)
        codec = self._by_type.get(cls)
        if codec is not None:
            return codec
        for codec in self._encoders:
            if codec.matches is not None and codec.matches(value):
                if cls in (str, bytes, bytearray, int, float, bool, list, dict):
                    self._by_type[cls] = codec
                return codec
        raise EncodeError(f"no codec encodes a value of type {cls.__name__}")

    def for_media_type(self, media_type: str) -> Codec:
        codec = self._by_media.get(media_type)
        if codec is None:
            raise UnsupportedMediaType(
                f"unsupported media type {media_type!r}; "
                f"this server decodes {', '.join(self.media_types)}"
            )
        return codec

    def for_tag(self, tag: int) -> Codec:
        codec = self._by_tag.get(tag)
        if codec is None:
            raise UnsupportedMediaType(f"unknown codec tag {tag}")
        return codec

    def encode(self, value: Any) -> tuple[str | None, bytes]:
        """``value`` -> ``(media type, body)``; ``None`` -> ``(None, b'')``."""
        if value is None:
            return None, b""
        codec = self.for_value(value)
        return codec.media_type, codec.encode(value)

    def decode(self, content_type: str | bytes | None, body: bytes) -> Any:
        """Decode a body by its ``Content-Type`` (parameters allowed).

        No content type and no body is ``None``; no content type with a body is
        treated as ``application/octet-stream`` (RFC 9110, section 8.3).
        """
        if content_type is None or not content_type:
            return body or None
        media_type, params = parse_media_type(content_type)
        return self.for_media_type(media_type).decode(body, params)

    def decode_tag(self, tag: int, body: bytes) -> Any:
        """Decode a native-framing body by its codec tag (0 is ``None``)."""
        if tag == NONE_TAG:
            return None
        return self.for_tag(tag).decode(body, {})

    def encode_tag(self, value: Any) -> tuple[int, bytes]:
        """``value`` -> ``(tag, body)`` for the native framing."""
        if value is None:
            return NONE_TAG, b""
        codec = self.for_value(value)
        return codec.tag, codec.encode(value)


#: The registry every server and client uses unless given another.
default_registry = CodecRegistry()
