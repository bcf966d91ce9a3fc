"""The budget for decoded structures: how large a JSON or msgpack body may become.

Bytes, text and ``.npy`` bodies decode to one object about the size of the
body. JSON and msgpack decode to one Python object per value, and a small
value is a large object: ``[],`` is 3 bytes of JSON and 91 bytes of memory at
the peak of ``orjson.loads`` (the list, its slot, orjson's parse tree);
``\\x90`` is one byte of msgpack and a 72-byte list. Unchecked, a body of
empty arrays took 31x its size (JSON) and 73x (msgpack) in server memory.
So every JSON or msgpack body the codec decodes is checked here first, with
three limits (``DecodeBudget``, built from ``Limits``):

* its size: at most ``max_structured_size`` bytes (default 64 MiB);
* msgpack: at most ``max_container_len`` items in one array or map and
  ``max_depth`` levels of nesting, checked as the headers are read;
* its cost: an estimate of the memory the decoded value takes at the peak of
  decoding must stay within ``max(FLOOR, EXPANSION x len(body))``: 16 MiB,
  or 9x the body. With the body itself, a request then peaks at about 10x
  its body. The floor lets a body under 1.8 MiB decode to 16 MiB, and JSON
  bodies that cannot reach it (under 256 KiB) are not estimated at all.

The estimates, in bytes of CPython 3.11 objects (64-bit, pymalloc rounding):

* msgpack: a walk over the body's headers (no value is built) that adds up
  the objects ``msgpack.unpackb`` will create: a list is 80 + 8 per item, a
  dict 64 + its hash table, a float or an int outside -5..256 is 32, a str
  64 + its bytes (1 byte or less: a cached object), a map key only the first
  time it is seen (msgpack interns keys, so records share theirs). It takes
  two to four times as long as decoding, and is exact but for strings mixing
  ASCII with characters beyond U+FFFF, which may take up to 4x their bytes.
* JSON: orjson has no hooks, so the body is counted at C speed
  (``bytes.count`` of brackets, commas, colons and quotes, a ``translate``
  for numbers), first whole, then, if that is over the allowance, without
  its strings (a split on quotes). Each count is charged the peak cost of
  what it stands for: orjson's parse tree (a copy of the body and 16 bytes
  per value), 80 per list, 192 per object (its first hash table included),
  8 per array item, 32 or 80 per object entry beyond the fifth, 64 per
  string and its bytes (x2 or x4 when wide characters are possible), 32 per
  number that is not a cached small int. orjson shares the str of a key it
  has seen recently (a 2048-entry cache of keys up to 64 bytes), so keys are
  charged as new strings only as far as samples of the body show distinct
  ones. The counting takes one to three times as long as decoding.

Measured peaks, before and after, are in ``docs/security.md``; the tests
check the walk against tracemalloc and the worst shapes against a server
process's own resident memory.

The estimates are in ``dataserve.core.estimate``, the one rule for JSON
numbers and strings (whichever parser runs) in ``dataserve.core.jsonrule``.
The API the raw TCP protocols call::

    budget = DecodeBudget.from_limits(limits)
    value = budget.decode_json(body)            # pyts
    value = budget.decode_msgpack(body, ...)    # tcpy; unpackb's options pass through

Both raise ``DecodeError`` (400: malformed, too deep) or
``StructureTooLarge`` (413: over a limit or the budget), both ``CodecError``;
an exception a caller's hook raises (a ``DataServeError``) passes through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import DataServeError, DecodeError, StructureTooLarge
from .estimate import ADVICE, estimate_json, estimate_msgpack
from .jsonrule import parse_json
from .limits import DEFAULT_LIMITS, Limits
from .pieces import parse_json_array, unpack_msgpack

__all__ = [
    "DEFAULT_BUDGET",
    "EXPANSION",
    "FLOOR",
    "DecodeBudget",
]

MiB = 1024 * 1024

#: A decoded value may take this many times its body's size at its peak...
EXPANSION = 9
#: ...or this many bytes, whichever is larger: small bodies are never refused
#: for their shape, and small JSON bodies skip the estimate altogether.
FLOOR = 16 * MiB

# The largest peak per byte a JSON body can reach: deep arrays approach 48x
# (2 bytes, "[" and "]", for a list, its slot and its parse node), measured
# 43x for "[[[[]]]],...". A body under FLOOR / 64 (256 KiB) cannot exceed the
# floor, so it is not scanned: the hot path of small requests pays one
# comparison.
_JSON_WORST = 64


# Budgets already made, by their limits (a budget is immutable: it can be shared).
_BY_LIMITS: dict[tuple[Any, int, int, int], DecodeBudget] = {}


@dataclass(frozen=True, slots=True)
class DecodeBudget:
    """The limits one server applies to JSON and msgpack bodies.

    Build it from the server's ``Limits`` (``DecodeBudget.from_limits``);
    ``expansion`` and ``floor`` are the cost budget (see the module's text).
    """

    max_size: int = DEFAULT_LIMITS.max_structured_size
    max_container_len: int = DEFAULT_LIMITS.max_container_len
    max_depth: int = DEFAULT_LIMITS.max_depth
    expansion: float = EXPANSION
    floor: int = FLOOR
    #: JSON bodies up to this size need no check at all: under the size
    #: limit, and unable to reach the floor (the codec's fast path).
    json_unchecked: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unchecked = min(self.max_size, self.floor // _JSON_WORST)
        object.__setattr__(self, "json_unchecked", unchecked)

    @classmethod
    def from_limits(cls, limits: Limits) -> DecodeBudget:
        """The budget ``limits`` set (made once per set of values: a protocol object
        per connection asks for it)."""
        key = (cls, limits.max_structured_size, limits.max_container_len, limits.max_depth)
        budget = _BY_LIMITS.get(key)
        if budget is None:
            if len(_BY_LIMITS) >= 64:
                _BY_LIMITS.clear()
            budget = _BY_LIMITS[key] = cls(
                max_size=limits.max_structured_size,
                max_container_len=limits.max_container_len,
                max_depth=limits.max_depth,
            )
        return budget

    def allowance(self, size: int) -> int:
        """Bytes a body of ``size`` bytes may take decoded, at its peak."""
        return max(self.floor, int(self.expansion * size))

    # --- JSON --------------------------------------------------------------------

    def check_json(self, body: bytes | bytearray | memoryview) -> None:
        """Refuse a JSON body over the size limit or the budget (``StructureTooLarge``)."""
        size = len(body)
        self._check_size(size, "JSON")
        if size <= self.json_unchecked:
            return
        allowance = self.allowance(size)
        cost = estimate_json(bytes(body), allowance)
        if cost > allowance:
            raise self._over_budget("JSON", size, cost, allowance)

    def decode_json(self, body: bytes | bytearray | memoryview) -> Any:
        """Check ``body`` and parse it by the one JSON rule (``DecodeError``, 400).

        The rule, whichever parser runs: UTF-8 only (no byte order mark); no
        NaN or Infinity, and no number too large for a float (RFC 8259,
        section 6, has neither); integers of any size are exact, up to
        Python's 4300 digits (CVE-2020-10735); no lone surrogate escapes
        (``"\\ud800"`` is not a character, RFC 8259 section 8.2); nesting up to
        1024 levels (orjson's; the exact-integer parser's recursion may stop
        a little earlier, at about 990).
        """
        self.check_json(body)
        return parse_json_array(bytes(body), parse_json)

    # --- msgpack -----------------------------------------------------------------

    def check_msgpack(self, body: bytes | bytearray | memoryview) -> None:
        """Refuse a msgpack body over a limit or the budget.

        ``StructureTooLarge`` for the size, a container's length or the
        estimate; ``DecodeError`` for nesting deeper than ``max_depth``. A
        body that is not msgpack at all passes: ``unpackb`` says what is wrong.
        """
        size = len(body)
        self._check_size(size, "msgpack")
        allowance = self.allowance(size)
        cost = estimate_msgpack(
            bytes(body), allowance, max_len=self.max_container_len, max_depth=self.max_depth
        )
        if cost > allowance:
            raise self._over_budget("msgpack", size, None, allowance)

    def decode_msgpack(self, body: bytes | bytearray | memoryview, **options: Any) -> Any:
        """Check ``body``, then ``msgpack.unpackb`` it with the container limits.

        ``options`` go to ``unpackb`` (``raw``, ``ext_hook``, ``timestamp``,
        ``object_hook``...); the container limits are this budget's. One value
        per body: trailing bytes are a ``DecodeError``.
        """
        import msgpack

        data = bytes(body)
        self.check_msgpack(data)
        # unpackb would derive its limits from len(data): never more than that,
        # so a short body cannot announce (and allocate) a long array.
        limit = min(self.max_container_len, len(data))
        try:
            # a large array an element at a time: the loop's turn between them
            return unpack_msgpack(data, limit, **options)
        except msgpack.ExtraData:
            raise DecodeError(
                "malformed msgpack: bytes left over after the value (a body is one value)"
            ) from None
        except msgpack.FormatError:  # its message is empty
            raise DecodeError(
                "malformed msgpack: a byte that begins no msgpack value (such as 0xc1)"
            ) from None
        except msgpack.StackError:
            raise DecodeError(
                f"malformed msgpack: nested deeper than {self.max_depth} levels"
            ) from None
        except DataServeError:
            raise  # from the caller's hooks
        except Exception as exc:  # msgpack raises beyond UnpackException (ValueError...)
            raise DecodeError(f"malformed msgpack: {exc}") from None

    # --- shared ------------------------------------------------------------------

    def _check_size(self, size: int, what: str) -> None:
        if size > self.max_size:
            raise StructureTooLarge(
                f"{what} body of {size} bytes is over the limit of {self.max_size} bytes "
                f"for JSON and msgpack (max_structured_size); {ADVICE}"
            )

    def _over_budget(
        self, what: str, size: int, cost: int | None, allowance: int
    ) -> StructureTooLarge:
        # cost: the JSON estimate; None for msgpack, whose walk stops at the allowance.
        times = f"{self.expansion:g}x its size" if allowance > self.floor else "the floor"
        took = f"about {_mib(cost)} MiB" if cost is not None else "more"
        return StructureTooLarge(
            f"{what} body of {size} bytes would take {took} decoded, over the "
            f"{_mib(allowance)} MiB allowed ({times}): too many small arrays, "
            f"objects or numbers for its size; {ADVICE}"
        )


def _mib(n: int) -> str:
    return f"{n / MiB:.1f}"


#: The budget for ``Limits()``: what ``default_registry`` decodes with.
DEFAULT_BUDGET = DecodeBudget()
