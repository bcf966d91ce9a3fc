"""Estimates of the memory a JSON or msgpack body takes once decoded.

What ``dataserve.core.budget`` checks a body against, before anything is
decoded; the constants are bytes of CPython 3.11 objects (64-bit, pymalloc
rounding), and the method for each format is in ``budget``'s docstring.
"""

from __future__ import annotations

import math
import re
import secrets

from .errors import DecodeError, StructureTooLarge

__all__ = [
    "ADVICE",
    "BIG_DIGITS",
    "NUMBER_CLASSES",
    "estimate_json",
    "estimate_msgpack",
    "without_strings",
]

MiB = 1024 * 1024
#: The most bytes one C call here goes over (see _json_cost).
STEP = 1 * MiB

#: What every refusal for size suggests instead.
ADVICE = (
    "send large or dense data as bytes (application/octet-stream) "
    "or as a numpy array (application/x-npy)"
)

# --- the JSON estimate -----------------------------------------------------------

# A key orjson may share: up to 64 bytes (its cache's limit), no escapes.
_SHARED_KEY = re.compile(rb'"([^"\\]{0,64})"[ \t\n\r]*:')
# Number tokens by class, for bytes.count: digits are "1", "." and "-" are
# "2", "e" and "E" are "4", anything else a space. A number starts at " 1"
# or " 2" (a minus); " 1 " and " 11 " are the small ints CPython caches
# (0..99; 100..256 are cached too: charged a little over). Where one
# separator ends a small int and begins the next ("[1,2]" has no space) the
# second is not seen as small: over again, never under.
NUMBER_CLASSES = bytes(
    0x31 if 0x30 <= b <= 0x39 else 0x32 if b in (0x2E, 0x2D) else
    0x34 if b in (0x45, 0x65) else 0x20
    for b in range(256)
)  # fmt: skip
BIG_DIGITS = b"1" * 19  # in the classes: a number that may need the exact parser

_LIST = 80  # a list object (56 bytes with its GC header, 64 rounded) and its
#             items array's rounding
_OBJECT = 192  # a dict object (64) and its first hash table (128: up to 5 keys)
_ITEM = 8  # an array item's slot
# An object entry beyond 5: its share of the hash table, and of the old table
# a resize leaves behind. Small objects (records) grow once or twice, into
# tables pymalloc reuses; a large one leaves its old tables in the heap.
_ENTRY_SMALL = 32
_ENTRY_LARGE = 80
_SMALL_OBJECT = 32  # entries per object, on average, below which objects are small
_STR = 64  # a str's header (49 bytes with one ASCII character), rounded
_NUM = 32  # a float, or an int outside the cached -5..256
# orjson parses with yyjson: a copy of the body and 16 bytes per value (keys
# included), all alive until the Python objects are built.
_DOM_VALUE = 16
# orjson's key cache: 2048 slots, direct-mapped. With d distinct keys about
# d/2048 of the lookups collide and allocate; d/1024 keeps a margin.
_KEY_CACHE = 1024
# Where keys are sampled for sharing: the start and three random places (an
# attacker cannot know which), 64 KiB each.
_KEY_WINDOW = 64 * 1024
_KEY_WINDOWS = 4


def estimate_json(body: bytes, allowance: int | None = None) -> int:
    """Estimated peak memory of ``orjson.loads(body)`` (plus the text copy the
    exact-integer parser makes), in bytes: an upper bound for the shapes
    measured (see the module's text).

    ``bytes`` methods only (C, memory speed). First over the whole body,
    counting brackets, commas and digits inside strings too, which can only
    over-estimate; if that is over ``allowance``, again without the strings.
    The keys are sampled only when that can change the verdict.
    """
    width = _widest_char(body)
    strings = (body.count(b'"') - body.count(b'\\"')) // 2
    share: list[float] = []  # sampled once, if needed

    def with_keys(cost: int, keys: int) -> int:
        all_keys = _STR * keys
        if allowance is not None and (cost > allowance or cost + all_keys <= allowance):
            return cost + all_keys  # sampling the keys cannot change the verdict
        if not share:
            share.append(_allocated_key_share(body))
        return cost + int(all_keys * share[0])

    estimate = with_keys(*_json_cost(body, body, strings, len(body), width))
    if allowance is None or estimate <= allowance:
        return estimate
    stripped, strings, string_bytes = without_strings(body)
    return with_keys(*_json_cost(body, stripped, strings, string_bytes, width))


def _json_cost(
    body: bytes, structure: bytes, strings: int, string_bytes: int, width: int
) -> tuple[int, int]:
    """The estimate but for the keys' strs, and how many keys there are."""
    size = len(body)
    lists = objects = commas = keys = numbers = 0
    exact = False
    # In steps of STEP bytes: the body is decoded off the event loop, and no
    # single C call may hold the interpreter (and the loop) for long. A step
    # is classified with the few bytes after it, so that a number across its
    # end is counted in it (and only in it: counts end at the step's end
    # plus the needle's length, less one).
    end = len(structure)
    for start in range(0, end, STEP):
        stop = min(start + STEP, end)
        lists += structure.count(b"[", start, stop)
        objects += structure.count(b"{", start, stop)
        commas += structure.count(b",", start, stop)
        keys += structure.count(b":", start, stop)
        classes = structure[start : stop + 3].translate(NUMBER_CLASSES)
        n = stop - start
        numbers += (
            classes.count(b" 1", 0, n + 1)
            + classes.count(b" 2", 0, n + 1)
            - classes.count(b" 1 ", 0, n + 2)
            - classes.count(b" 11 ", 0, n + 3)
        )
        if start == 0:
            numbers += classes.startswith((b"1", b"2"))
        if not exact:
            exact = BIG_DIGITS in structure[max(0, start - 18) : stop].translate(NUMBER_CLASSES)
    del classes
    # Items in arrays: each array's commas plus one; the commas between an
    # object's entries are not items.
    items = max(0, commas - keys + objects) + lists
    values = commas + keys + lists + objects + 1
    entry = _ENTRY_SMALL if keys <= _SMALL_OBJECT * objects else _ENTRY_LARGE
    cost = (
        size
        + _DOM_VALUE * values
        + _LIST * lists
        + _OBJECT * objects
        + _ITEM * items
        + entry * max(0, keys - 5 * objects)
        + _STR * max(0, strings - keys)
        + width * string_bytes
        + _NUM * numbers
    )
    if exact:  # the exact path decodes the whole body to str first
        cost += width * size
    return cost, keys


def without_strings(body: bytes) -> tuple[bytes, int, int]:
    """``body`` without its strings, how many strings it had and their bytes.

    Escaped backslashes and quotes are removed first, so every quote left
    opens or closes a string; then a split on quotes, a chunk at a time,
    keeps the pieces outside strings (C speed, a copy of the body at most).
    """
    if b"\\" in body:
        body = _unescaped(body)
    quotes = sum(body.count(b'"', i, i + STEP) for i in range(0, len(body), STEP))
    if not quotes:
        return body, 0, 0
    parts = []
    inside = False
    for start in range(0, len(body), STEP):
        pieces = body[start : start + STEP].split(b'"')
        parts.append(b"".join(pieces[1::2] if inside else pieces[0::2]))
        if len(pieces) % 2 == 0:  # an odd number of quotes: the next step starts the other way
            inside = not inside
    stripped = b"".join(parts)
    return stripped, quotes // 2, len(body) - len(stripped) - quotes


def _unescaped(body: bytes) -> bytes:
    """``body`` without escaped backslashes and quotes, a step at a time (a step
    never ends inside an escape: it is made a byte longer when it would)."""
    parts = []
    start, end = 0, len(body)
    while start < end:
        stop = min(start + STEP, end)
        # an odd run of backslashes at the end of the step: one escape is cut
        run = len(body[max(start, stop - 64) : stop]) - len(
            body[max(start, stop - 64) : stop].rstrip(b"\\")
        )
        if run % 2 and stop < end:
            stop += 1
        parts.append(body[start:stop].replace(b"\\\\", b"").replace(b'\\"', b""))
        start = stop
    return b"".join(parts)


def _allocated_key_share(body: bytes) -> float:
    """The share of the body's keys orjson allocates a str for, from samples.

    Keys it finds in the samples (64 bytes at most, no escapes) are shared
    as far as they repeat and the cache holds them; the others (long keys,
    escaped ones, more distinct keys than the cache holds) are allocated.
    """
    size = len(body)
    starts = {0}
    if size > _KEY_WINDOW:
        starts.update(secrets.randbelow(size - _KEY_WINDOW) for _ in range(_KEY_WINDOWS - 1))
    seen: set[bytes] = set()
    found = keys = 0
    for start in starts:
        window = body[start : start + _KEY_WINDOW]
        keys += window.count(b":")
        names = _SHARED_KEY.findall(window)
        found += len(names)
        seen.update(names)
    if not keys:
        return 1.0
    distinct = len(seen)
    if distinct > _KEY_CACHE:
        return 1.0
    found = min(found, keys)
    allocated = (keys - found) + min(found, distinct + found * distinct // _KEY_CACHE)
    return allocated / keys


def _widest_char(body: bytes) -> int:
    """Bytes of memory a str decoded from ``body`` may need per body byte.

    ASCII text is 1. Other UTF-8 (2- and 3-byte sequences, or \\u escapes of
    the Basic Multilingual Plane) is at most 2: a character takes 2 bytes at
    most, and makes its string's ASCII take 2. A 4-byte sequence or a
    surrogate escape (a character beyond U+FFFF) may make a whole string take
    4 bytes per character. ``in`` of one byte is a memchr: milliseconds for
    64 MiB.
    """
    escapes = b"\\u" in body
    if escapes and (b"\\ud" in body or b"\\uD" in body):
        return 4
    if body.isascii():
        return 2 if escapes else 1
    if any(lead in body for lead in (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")):
        return 4
    return 2


# --- the msgpack estimate --------------------------------------------------------

# The first byte of each msgpack value (spec: github.com/msgpack/msgpack
# "spec.md"), as a kind, the bytes it takes (for fixed-size values) or the
# bytes of its length field, and what it costs decoded beyond its slot.
_FIXED, _FIXARRAY, _FIXMAP, _FIXSTR, _STRBIN, _ARRAY, _MAP, _FIXEXT, _EXT, _BAD = range(10)


def _tables() -> tuple[bytes, bytes, tuple[int, ...], bytes]:
    kind = [_BAD] * 256
    size = [0] * 256
    cost = [0] * 256

    def fixed(byte: int, length: int, decoded: int) -> None:
        kind[byte], size[byte], cost[byte] = _FIXED, length, decoded

    for b in range(0x00, 0x80):
        fixed(b, 1, 0)  # positive fixint: a cached small int
    for b in range(0x80, 0x90):
        kind[b] = _FIXMAP
    for b in range(0x90, 0xA0):
        kind[b] = _FIXARRAY
    for b in range(0xA0, 0xC0):
        kind[b] = _FIXSTR
    fixed(0xC0, 1, 0)  # nil
    fixed(0xC2, 1, 0)  # false
    fixed(0xC3, 1, 0)  # true
    for b, header in ((0xC4, 1), (0xC5, 2), (0xC6, 4), (0xD9, 1), (0xDA, 2), (0xDB, 4)):
        kind[b], size[b] = _STRBIN, header
    for b, header in ((0xC7, 1), (0xC8, 2), (0xC9, 4)):
        kind[b], size[b] = _EXT, header
    fixed(0xCA, 5, _NUM)  # float 32
    fixed(0xCB, 9, _NUM)  # float 64
    fixed(0xCC, 2, 0)  # uint 8: 0..255, cached
    fixed(0xCD, 3, _NUM)
    fixed(0xCE, 5, _NUM)
    fixed(0xCF, 9, 48)  # beyond 2**60 an int takes 36 bytes: 48 rounded
    fixed(0xD0, 2, _NUM)
    fixed(0xD1, 3, _NUM)
    fixed(0xD2, 5, _NUM)
    fixed(0xD3, 9, 48)
    for b, length in ((0xD4, 1), (0xD5, 2), (0xD6, 4), (0xD7, 8), (0xD8, 16)):
        kind[b], size[b] = _FIXEXT, 2 + length
    kind[0xDC], size[0xDC] = _ARRAY, 2
    kind[0xDD], size[0xDD] = _ARRAY, 4
    kind[0xDE], size[0xDE] = _MAP, 2
    kind[0xDF], size[0xDF] = _MAP, 4
    for b in range(0xE0, 0xFB):
        fixed(b, 1, _NUM)  # negative fixint -32..-6: not cached
    for b in range(0xFB, 0x100):
        fixed(b, 1, 0)  # -5..-1: cached
    # 0xC1 is never used: _BAD
    cheap = bytes(kind[b] == _FIXED and size[b] == 1 and cost[b] == 0 for b in range(256))
    return bytes(kind), bytes(size), tuple(cost), cheap


_KIND, _SIZE, _COST, _CHEAP = _tables()
# A run of one-byte values that cost nothing but their slot (small ints, nil,
# booleans): skipped in one call, so a long array of them is not a loop.
_CHEAP_RUN = re.compile(rb"[\x00-\x7f\xc0\xc2\xc3\xfb-\xff]+")
_EXT_COST = 128  # an ExtType (a 2-tuple and a bytes), a Timestamp or a datetime
_KEY_INTERN = 48  # a new key's entry in the interpreter's table of interned strings


def _dict_cost(n: int) -> int:
    """A dict as ``msgpack.unpackb`` builds it for ``n`` entries (``_PyDict_NewPresized``)."""
    if n == 0:
        return 64
    if n <= 5:
        return 64 + 128  # PyDict_New, then an 8-slot table of str keys
    log2 = max(3, ((n * 3 + 1) // 2).bit_length())
    slots = 1 << log2
    index = 1 if log2 < 8 else 2 if log2 < 16 else 4
    table = 32 + slots * index + (2 * slots // 3) * 24
    return 64 + table + 16  # + a malloc header: large tables leave pymalloc


# A str or bytes of 0 or 1 bytes is a cached object; a longer one a header
# (33 bytes for bytes, 49 for an ASCII str), its data, rounded to 16: at
# most _STR + its length.
_FIXMAP_COSTS = tuple(_dict_cost(n) for n in range(16))


def estimate_msgpack(
    body: bytes, allowance: int | None = None, *, max_len: int = 2**32, max_depth: int = 2**31
) -> int:
    """Memory ``msgpack.unpackb(body)`` takes, in bytes, from a walk over its headers.

    Raises ``StructureTooLarge`` for an array or map over ``max_len`` items,
    ``DecodeError`` for nesting deeper than ``max_depth``; stops (returning
    what it has) at the first byte that is not msgpack, and once the cost
    passes ``allowance`` (checked at each container).
    """
    limit = math.inf if allowance is None else allowance
    kind_of, size_of, cost_of, cheap, map_costs = _KIND, _SIZE, _COST, _CHEAP, _FIXMAP_COSTS
    from_bytes = int.from_bytes
    cheap_run = _CHEAP_RUN.match
    i = 0
    cost = 0
    left = 1  # values still to read at this level
    in_map = 0  # 1: this level is a map (the values read at an even "left" are keys)
    stack: list[int] = []  # the levels above: left << 1 | in_map
    keys: set[bytes] = set()
    try:
        while True:
            while left:
                b = body[i]
                k = kind_of[b]
                if k == _FIXED:
                    if not in_map and left > 8 and cheap[b] and cheap[body[i + 1]]:
                        m = cheap_run(body, i, i + left)
                        assert m is not None  # body[i] is cheap
                        i, left = m.end(), left - (m.end() - i)
                        continue
                    i += size_of[b]
                    cost += cost_of[b]
                    left -= 1
                    continue
                if k in (_FIXSTR, _STRBIN):
                    if k == _FIXSTR:
                        length, start = b - 0xA0, i + 1
                    else:
                        h = size_of[b]
                        length, start = from_bytes(body[i + 1 : i + 1 + h], "big"), i + 1 + h
                    i = start + length
                    if length > 1:
                        if in_map and not left & 1:  # a key: interned, charged once
                            key = body[start:i]
                            if key not in keys:
                                keys.add(key)
                                cost += _STR + length + _KEY_INTERN
                        else:
                            cost += _STR + length
                    left -= 1
                    continue
                if k in (_FIXMAP, _FIXARRAY):
                    count = b & 0x0F
                    i += 1
                    if k == _FIXMAP:
                        cost += map_costs[count]
                        count *= 2
                        is_map = 1
                    else:
                        cost += _LIST + 8 * count + (16 if count else 0)
                        is_map = 0
                elif k in (_MAP, _ARRAY):
                    h = size_of[b]
                    count = from_bytes(body[i + 1 : i + 1 + h], "big")
                    if i + 1 + h > len(body):
                        return cost  # truncated: unpackb says so
                    i += 1 + h
                    if count > max_len:
                        what = "array" if k == _ARRAY else "map"
                        raise StructureTooLarge(
                            f"msgpack {what} of {count} items is over the limit of {max_len} "
                            f"items per array or map (max_container_len); {ADVICE}"
                        )
                    if k == _MAP:
                        cost += _dict_cost(count)
                        count *= 2
                        is_map = 1
                    else:
                        cost += _LIST + 8 * count + (16 if count else 0)
                        is_map = 0
                elif k == _BAD:
                    return cost  # not msgpack: unpackb says why
                else:  # an extension
                    if k == _FIXEXT:
                        i += size_of[b]
                        cost += _EXT_COST
                    else:
                        h = size_of[b]
                        length = from_bytes(body[i + 1 : i + 1 + h], "big")
                        i += 2 + h + length
                        cost += _EXT_COST + length
                    left -= 1
                    continue
                # an array or a map
                if len(stack) >= max_depth:
                    raise DecodeError(f"malformed msgpack: nested deeper than {max_depth} levels")
                left -= 1
                if cost > limit:
                    return cost
                if count:
                    stack.append(left << 1 | in_map)
                    left, in_map = count, is_map
            if not stack or cost > limit:
                return cost
            level = stack.pop()
            left, in_map = level >> 1, level & 1
    except IndexError:
        return cost  # truncated: unpackb says so
