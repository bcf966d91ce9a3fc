"""One rule for JSON, whichever parser runs, both ways.

Decoding (``parse_json``): UTF-8 only (no byte order mark); no NaN or
Infinity, and no number too large for a float (RFC 8259, section 6, has
neither); integers of any size exact, up to Python's 4300 digits
(CVE-2020-10735); no lone surrogate escapes (RFC 8259, section 8.2).
orjson parses unless the body holds an integer beyond 64 bits, which it
would read as a float: then the standard library's parser, held to the
same rule.

Encoding (``encode_json``): NaN and Infinity are refused with ``EncodeError``
naming where they are (orjson writes them as ``null``, a value the sender
never meant); integers beyond 64 bits go through the standard library.
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import Any

import orjson

from .errors import DecodeError, EncodeError
from .estimate import BIG_DIGITS, NUMBER_CLASSES, without_strings

__all__ = ["BIG_DIGITS", "DIGITS", "JSON_OPTIONS", "encode_json", "parse_json"]

#: orjson's options for every JSON answer: dict keys that are not str, numpy arrays.
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


# --- the one rule for JSON ---------------------------------------------------------

# orjson reads integers beyond 64 bits as floats, losing digits, so a body
# with such an integer goes to the standard library instead: exact ints, and
# its 4300-digit cap against quadratic int parsing (CVE-2020-10735). Which
# parser runs must not change the verdict: both apply the same rule
# (decode_json), and only a real integer token (outside strings) chooses.
# A 19-digit run is the cheap first test (two passes at memory speed: a
# regular expression took 0.2 s for 15 MB); -9223372036854775809 is the
# first integer that needs it.
DIGITS = bytes(0x31 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
# A \u escape of a surrogate (after an even number of backslashes), and one of
# a high surrogate followed by a low one: JSON text has no lone surrogate
# exactly when the first count is twice the second.
_SURROGATE = re.compile(r"(?<!\\)(?:\\\\)*\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_PAIR = re.compile(
    r"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def parse_json(body: bytes) -> Any:
    """Parse JSON by the one rule (see ``DecodeBudget.decode_json``); no budget check."""
    # (find, not "in": "bytes in bytes" raises and clears a TypeError inside
    # CPython first, a quarter of a microsecond on every small body)
    if len(body) < 19 or body.translate(DIGITS).find(BIG_DIGITS) == -1 or not _has_big_int(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:  # a ValueError
            raise DecodeError(f"malformed JSON: {exc}") from None
    return _parse_exact(body)


def _has_big_int(body: bytes) -> bool:
    # Outside strings, 20 digits in a row, or a minus sign and 19 (the classes
    # do not tell a minus from a decimal point: a float with 19 decimals takes
    # the exact path too, and comes out the same).
    classes = without_strings(body)[0].translate(NUMBER_CLASSES)
    return b"1" * 20 in classes or b"2" + BIG_DIGITS in classes


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259, section 6)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is too large for a float (JSON has no Infinity)")
    return value


def _parse_exact(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")  # orjson accepts UTF-8 only (RFC 8259, section 8.1)
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"malformed JSON: not valid UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    if "\\u" in text and len(_SURROGATE.findall(text)) != 2 * len(_SURROGATE_PAIR.findall(text)):
        raise DecodeError(
            "malformed JSON: a \\u escape is a lone surrogate, not a character "
            "(RFC 8259, section 8.2)"
        )
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise DecodeError("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, the digit cap, our own refusals
        raise DecodeError(f"malformed JSON: {exc}") from None


# --- encoding -----------------------------------------------------------------------


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON (orjson); NaN and Infinity refused (``EncodeError``)."""
    try:
        data = orjson.dumps(value, option=JSON_OPTIONS)
    except TypeError as exc:
        # orjson refuses integers beyond 64 bits (and a few exotic types) that
        # the standard library handles; fall back to it before giving up.
        return _encode_json_exact(value, exc)
    # orjson writes NaN and +-Infinity as null: a value the receiver never
    # sent. JSON has no such numbers (RFC 8259, section 6), so they are
    # refused. Only a body with a null can hold one: a memchr for "n" (an int
    # needle: "b'n' in data" costs an exception inside CPython), then a
    # search for "null", then a walk over the value.
    if _N in data and data.find(b"null") != -1 and _has_non_finite(value):
        _refuse_non_finite(value)
    return data


_N = ord("n")


def _encode_json_exact(value: Any, error: Exception) -> bytes:
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError:  # allow_nan=False
        _refuse_non_finite(value)
        raise EncodeError("a value cannot be encoded as JSON: a float is out of range") from None
    except (TypeError, RecursionError):
        raise EncodeError(
            f"a value of type {type(value).__name__} cannot be encoded: {error}"
        ) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 form, not JSON
        raise EncodeError(f"a str cannot be sent as JSON: {exc.reason}") from None


_PLAIN = frozenset({str, int, bool, type(None)})


def _has_non_finite(value: Any) -> bool:
    """Whether ``value`` holds a NaN or an infinity: a walk, types first,
    scalars checked in their container's loop (no stack for them)."""
    stack = [value]
    plain = _PLAIN
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            items: Any = item.values()
        elif kind is list or kind is tuple:
            items = item
        elif kind is float:
            if item - item != 0.0:  # nan - nan and inf - inf are nan
                return True
            continue
        elif kind in plain:
            continue
        else:  # subclasses, numpy: the slow walk
            if _non_finite(item) is not None:
                return True
            continue
        for x in items:
            kind = type(x)
            if kind is float:
                if x - x != 0.0:
                    return True
            elif kind not in plain:
                stack.append(x)
    return False


def _refuse_non_finite(value: Any) -> None:
    """Raise ``EncodeError`` naming the first NaN or Infinity in ``value``, if any."""
    found = _non_finite(value)
    if found is not None:
        what, where = found
        raise EncodeError(
            f"{what} cannot be sent as JSON (at {where}): JSON has no NaN or Infinity "
            "(RFC 8259, section 6); send None or a string instead, or the numbers as "
            "a numpy array (application/x-npy)"
        )


def _non_finite(value: Any) -> tuple[str, str] | None:
    """``(what, where)`` of the first non-finite float in ``value``, or ``None``."""
    stack: list[tuple[Any, str]] = [(value, "the value")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return _name_of(item), where
        elif isinstance(item, dict):
            stack.extend((v, f"{where}[{k!r}]") for k, v in reversed(item.items()))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item))))
        elif type(item).__module__ == "numpy":
            found = _non_finite_numpy(item)
            if found is not None:
                return found[0], f"{where}{found[1]}"
        elif isinstance(item, enum.Enum):  # orjson sends an enum's value
            stack.append((item.value, f"{where}.value"))
        elif hasattr(type(item), "__dataclass_fields__"):  # orjson sends their fields
            names = list(type(item).__dataclass_fields__)
            stack.extend((getattr(item, n), f"{where}.{n}") for n in reversed(names))
    return None


def _name_of(x: float) -> str:
    return "NaN" if math.isnan(x) else "Infinity" if x > 0 else "-Infinity"


def _non_finite_numpy(item: Any) -> tuple[str, str] | None:
    import numpy as np

    array = np.asarray(item)
    if array.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    first = complex(array[index])
    name = "NaN" if first != first else "Infinity" if first.real > 0 else "-Infinity"
    return name, "".join(f"[{i}]" for i in index)
