"""Fuzz target: the codec's decoders (``dataserve.core.codec``), as a server calls them.

A fuzz input is ``selector, tag, body...``: ``selector`` picks the
``Content-Type`` (one of ``CONTENT_TYPES``, or, past their end, the body's
first line as the header value), ``tag`` the native framing's codec tag.
Properties:

* ``decode`` and ``decode_tag`` raise nothing but ``CodecError``;
* a value decoded from JSON, text, bytes or ``.npy`` encodes again (or raises
  ``EncodeError``) and decodes to an equal value;
* nothing decoded is ever a pickle's object: ``.npy`` loads refuse pickles.

Run: ``python fuzz/run.py --seconds 60 codec``.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np

from dataserve.core.codec import JSON, NPY, TEXT, default_registry
from dataserve.core.errors import CodecError, EncodeError

from ._main import exec_target

CONTENT_TYPES: tuple[str | None, ...] = (
    None,
    "text/plain",
    "text/plain; charset=utf-8",
    "text/plain; charset=latin-1",
    "text/plain; charset=utf-16",
    "text/plain; charset=utf-7",
    "application/json",
    "application/octet-stream",
    "application/x-npy",
    "application/msgpack",
    "application/x-msgpack",
    "image/png",
)
#: Media types whose decoded values must survive encoding and decoding again.
_ROUND_TRIP = {TEXT, JSON, NPY, "application/octet-stream"}


def _content_type(selector: int, body: bytes) -> tuple[str | bytes | None, bytes]:
    if selector < len(CONTENT_TYPES):
        return CONTENT_TYPES[selector], body
    header, _, rest = body.partition(b"\n")
    return header, rest


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _media_type(content_type: str | bytes) -> str:
    text = content_type.decode("latin-1") if isinstance(content_type, bytes) else content_type
    return text.partition(";")[0].strip().lower()


def check(data: bytes) -> None:
    selector = data[0] if data else 0
    tag = data[1] if len(data) > 1 else 0
    content_type, body = _content_type(selector, data[2:])
    codecs = default_registry
    try:
        value = codecs.decode(content_type, body)
    except CodecError:
        value = None
    else:
        if content_type and _media_type(content_type) in _ROUND_TRIP:
            try:
                media_type, encoded = codecs.encode(value)
            except EncodeError:
                pass  # a str with lone surrogates has no UTF-8 form: refused, typed
            else:
                again = codecs.decode(media_type, encoded)
                assert _same(value, again), f"{value!r} came back as {again!r}"
    with contextlib.suppress(CodecError):
        codecs.decode_tag(tag, body)


def _npy(array: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def seeds() -> Iterator[bytes]:
    def pick(content_type: str | None) -> int:
        return CONTENT_TYPES.index(content_type)

    yield bytes([pick("text/plain"), 1]) + "h\u00e9llo".encode()
    yield bytes([pick("text/plain; charset=utf-16"), 1]) + "hi".encode("utf-16")
    yield bytes([pick("text/plain; charset=utf-7"), 1]) + b"+2AA-"
    yield bytes([pick("application/json"), 3]) + b'{"a": [1, 2.5, null, "x"], "b": 1e308}'
    yield bytes([pick("application/octet-stream"), 2]) + bytes(range(256))
    yield bytes([pick("application/x-npy"), 4]) + _npy(np.arange(6, dtype="<i4").reshape(2, 3))
    yield bytes([pick("application/x-npy"), 4]) + _npy(np.array([1.5, np.nan]))
    yield bytes([pick("application/x-npy"), 4]) + _npy(np.zeros(3, dtype=[("a", "<f4")]))
    yield bytes([pick("application/msgpack"), 5]) + msgpack.packb({"k": [1, b"\x00", 2.5]})
    yield bytes([len(CONTENT_TYPES), 0]) + b"text/plain; charset=idna\nexample"
    yield bytes([len(CONTENT_TYPES), 3]) + b"Application/JSON; q=1\n[1]"


if __name__ == "__main__":
    exec_target("codec")
