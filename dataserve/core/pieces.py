"""Decoding a large body in pieces, so that no single step holds the interpreter long.

Bodies above a small size are decoded off the event loop (``dataserve.core.
exchange``), but a thread helps the loop only between the decoder's calls:
``orjson.loads``, ``msgpack.unpackb`` and ``bytes.decode`` hold the GIL for
their whole run, a fifth of a second for 16 MiB of JSON, and the loop waits
that long. So a large body is decoded a piece of ``STEP`` bytes at a time,
and the loop gets the interpreter between pieces:

* text: an incremental decoder, piece by piece, joined once;
* a JSON array: cut at commas between its elements, each run of elements
  parsed as an array of its own and appended; the cuts are found by counting
  brackets and quotes, and checked by the parser itself: a body whose cuts do
  not parse (brackets inside strings, say) is parsed whole, with the same
  result or the same error;
* a msgpack array or map: its elements read one at a time from a streaming
  unpacker (at most ``max_container_len`` of them);
* a ``.npy`` array: its data copied into the new array a piece at a time.

Each result is the same value the one-call decoder gives.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable
from typing import Any

__all__ = ["STEP", "decode_text", "load_npy", "parse_json_array", "unpack_msgpack"]

#: The most bytes one decoding step takes on (1 MiB: a few milliseconds).
STEP = 1024 * 1024

_SPACE = b" \t\n\r"


def decode_text(body: bytes, encoding: str) -> str:
    """``body.decode(encoding)``, a piece at a time when it is large.

    A ``UnicodeDecodeError`` says where in the whole body."""
    if len(body) <= STEP:
        return body.decode(encoding)
    decoder = codecs.getincrementaldecoder(encoding)()
    view = memoryview(body)
    parts = []
    for start in range(0, len(body), STEP):
        pending = len(decoder.getstate()[0])
        try:
            parts.append(decoder.decode(view[start : start + STEP]))
        except UnicodeDecodeError as exc:
            raise UnicodeDecodeError(
                exc.encoding, body, start - pending + exc.start, start - pending + exc.end,
                exc.reason,
            ) from None  # fmt: skip
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def parse_json_array(body: bytes, parse: Callable[[bytes], Any]) -> Any:
    """``parse(body)`` for a JSON body, in pieces when it is a large array."""
    if len(body) <= 2 * STEP:
        return parse(body)
    first = len(body) - len(body.lstrip(_SPACE))
    last = len(body.rstrip(_SPACE)) - 1
    if body[first : first + 1] != b"[" or body[last : last + 1] != b"]":
        return parse(body)
    out: list[Any] = []
    start = first + 1
    while start < last:
        cut = _cut(body, start, last) if start + STEP < last else last
        try:
            part = parse(b"[" + body[start:cut] + b"]")
        except Exception:
            return parse(body)  # not cut where it seemed: the whole body says what it is
        if not isinstance(part, list):
            return parse(body)
        out.extend(part)
        start = cut + 1  # past the comma
    return out


def _cut(body: bytes, start: int, last: int) -> int:
    """A comma between two of the array's elements, about ``STEP`` after ``start``
    (``last`` if there is none): where the text since ``start`` has as many
    opening as closing brackets and an even number of quotes."""
    depth = quotes = 0
    at = start
    comma = body.find(b",", start + STEP, last)
    while comma != -1:
        depth += (
            body.count(b"[", at, comma)
            + body.count(b"{", at, comma)
            - body.count(b"]", at, comma)
            - body.count(b"}", at, comma)
        )
        quotes += body.count(b'"', at, comma) - body.count(b'\\"', at, comma)
        if depth == 0 and quotes % 2 == 0:
            return comma
        at = comma
        if comma - start > 4 * STEP:
            break  # no cut in sight (a bracket inside a string?): the rest at once
        comma = body.find(b",", comma + 1, last)
    return last


def unpack_msgpack(body: bytes, limit: int, **options: Any) -> Any:
    """``msgpack.unpackb(body, ...)``, an element at a time when it is a large
    array (``limit`` items per container at most). With hooks among
    ``options`` (which the top-level array would bypass), in one call."""
    import msgpack

    first = body[0] if body else 0
    is_array = first in (0xDC, 0xDD) or 0x90 <= first <= 0x9F
    if len(body) <= 2 * STEP or not is_array or "list_hook" in options:
        return msgpack.unpackb(body, max_array_len=limit, max_map_len=limit, **options)
    unpacker = msgpack.Unpacker(
        max_buffer_size=len(body), max_array_len=limit, max_map_len=limit, **options
    )
    unpacker.feed(body)
    value = [unpacker.unpack() for _ in range(unpacker.read_array_header())]
    if unpacker.tell() != len(body):
        raise msgpack.ExtraData(value, body[unpacker.tell() :])
    return value


def load_npy(body: bytes) -> Any:
    """``numpy.load`` of a ``.npy`` body (never a pickle), its data copied a
    piece at a time."""
    import numpy as np
    from numpy.lib import format as npy

    stream = io.BytesIO(body)
    version = npy.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(stream)
    else:  # version 3 (a UTF-8 header) has no public reader: numpy loads it whole
        stream.seek(0)  # from the magic: past it, numpy would take the body for a pickle
        return np.load(stream, allow_pickle=False)
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    count = 1
    for n in shape:
        count *= n
    if count and not dtype.itemsize:
        # no data to copy (the codec refuses such an array, which holds nothing)
        return np.empty(shape, dtype=dtype)
    offset = stream.tell()
    size = count * dtype.itemsize
    held = len(body) - offset
    if held != size:
        # Checked before anything is allocated: a 128-byte body may announce 7 TiB.
        what = "an array too large for its body" if size > held else "bytes left over"
        raise ValueError(
            f"its header announces {size} bytes of data and the body holds {held}: {what}"
        )
    array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    flat = array.reshape(-1, order="A").view(np.uint8)
    for start in range(0, size, STEP):
        stop = min(start + STEP, size)
        flat[start:stop] = np.frombuffer(body, np.uint8, stop - start, offset + start)
    return array
