"""``BufferCache``: large body buffers reused once nobody holds them, for ``linger`` seconds."""

from __future__ import annotations

import asyncio
import pickle

import numpy as np
import pytest

from dataserve.core import buffer_cache
from dataserve.core.buffer_cache import CACHE_FROM, BufferCache, size_class
from dataserve.core.buffers import BodyBuffer
from dataserve.core.limits import Limits

MiB = 1 << 20

pytestmark = pytest.mark.skipif(not buffer_cache.enabled(), reason="needs CPython's bytes layout")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def body(cache: BufferCache | None, size: int, fill: bytes) -> bytes:
    """A body as the server makes one: read into a buffer, then handed out."""
    buf = BodyBuffer(size, cache)
    buf.write(fill * (size // len(fill)))
    return buf.finish()


def test_size_classes_are_eight_per_doubling_and_never_smaller() -> None:
    assert size_class(64 * MiB) == 64 * MiB
    assert size_class(64 * MiB + 1) == 72 * MiB
    assert size_class(60 * MiB) == 60 * MiB
    for size in (CACHE_FROM, 3 * MiB + 7, 100 * MiB - 1, 512 * MiB + 12345):
        assert size <= size_class(size) <= size * 9 // 8 + 1


def test_a_free_body_buffer_is_reused_with_its_new_content_and_hash() -> None:
    cache = BufferCache(1 << 30, 10.0)
    first = body(cache, 4 * MiB, b"a")
    hash(first)  # cached in the object: must not survive its reuse
    where = id(first)
    del first
    second = body(cache, 4 * MiB, b"b")
    assert id(second) == where
    assert (cache.reused, cache.allocated) == (1, 1)
    assert second == b"b" * (4 * MiB)
    assert hash(second) == hash(b"b" * (4 * MiB))


def test_a_like_size_reuses_the_buffer_with_its_own_length() -> None:
    cache = BufferCache(1 << 30, 10.0)
    first = body(cache, 62 * MiB, b"x")
    del first
    second = body(cache, 61 * MiB, b"yz")  # the same class: 60-64 MiB
    assert cache.reused == 1
    assert len(second) == 61 * MiB and second[-2:] == b"yz"
    assert bytes(second[:4]) == b"yzyz" and second.endswith(b"yz")


def hold(holder: str, first: bytes) -> object:
    """What a handler might keep of a body."""
    if holder == "a memoryview":
        return memoryview(first)[10:]
    if holder == "a numpy array":
        return np.frombuffer(first, dtype=np.uint8)
    if holder == "a dict key":
        return {first: 1}
    return first


@pytest.mark.parametrize("holder", ["the body", "a memoryview", "a numpy array", "a dict key"])
def test_a_body_someone_still_holds_is_never_reused(holder: str) -> None:
    cache = BufferCache(1 << 30, 10.0)
    kept = hold(holder, body(cache, 2 * MiB, b"k"))
    second = body(cache, 2 * MiB, b"n")
    assert cache.reused == 0
    assert second == b"n" * (2 * MiB)
    if isinstance(kept, dict):
        (key,) = kept
        assert key == b"k" * (2 * MiB) and kept[b"k" * (2 * MiB)] == 1
    else:
        assert bytes(kept) == b"k" * (len(bytes(kept)))  # type: ignore[call-overload]


def test_small_bodies_and_no_cache_bypass_it() -> None:
    cache = BufferCache(1 << 30, 10.0)
    small = body(cache, CACHE_FROM - 1, b"s")
    assert cache.held == 0 and len(small) == CACHE_FROM - 1
    plain = body(None, 4 * MiB, b"p")
    assert cache.held == 0 and plain == b"p" * (4 * MiB)


def test_a_miss_drops_the_free_buffers_first_so_the_peak_is_not_raised() -> None:
    cache = BufferCache(1 << 30, 10.0)
    a = body(cache, 8 * MiB, b"a")
    b = body(cache, 16 * MiB, b"b")
    assert cache.held == 24 * MiB
    del a  # free; b still held
    c = body(cache, 32 * MiB, b"c")  # a miss: the free 8 MiB one goes before
    assert cache.held == 48 * MiB  # b (held) and c
    assert b == b"b" * (16 * MiB) and len(c) == 32 * MiB


def test_no_more_than_retain_is_tracked() -> None:
    cache = BufferCache(20 * MiB, 10.0)
    kept = [body(cache, 8 * MiB, bytes([i])) for i in range(4)]
    assert cache.held <= 20 * MiB
    assert body(cache, 64 * MiB, b"z") and cache.held <= 20 * MiB  # too large to keep
    assert [k[:1] for k in kept] == [b"\x00", b"\x01", b"\x02", b"\x03"]


def test_trim_lets_go_of_buffers_lent_linger_seconds_ago() -> None:
    clock = Clock()
    cache = BufferCache(1 << 30, 5.0, clock=clock)
    old = body(cache, 2 * MiB, b"o")
    clock.now += 3
    new = body(cache, 4 * MiB, b"n")
    del old, new
    clock.now += 2.5
    cache.trim()
    assert cache.held == 4 * MiB  # the first is past linger, the second not yet
    clock.now += 3
    cache.trim()
    assert cache.held == 0
    again = body(cache, 4 * MiB, b"m")
    assert (cache.reused, again[:1]) == (0, b"m")


def test_on_a_loop_the_linger_timer_lets_go() -> None:
    async def main() -> int:
        cache = BufferCache(1 << 30, 0.05)
        first = body(cache, 2 * MiB, b"t")
        del first
        assert cache.held == 2 * MiB
        deadline = asyncio.get_running_loop().time() + 5
        while cache.held and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # sleep-ok: polls the timer's effect, with a deadline
        return cache.held

    assert asyncio.run(main()) == 0


def test_clear_lets_go_of_everything() -> None:
    cache = BufferCache(1 << 30, 10.0)
    first = body(cache, 2 * MiB, b"c")
    cache.clear()
    del first
    assert cache.held == 0


def test_from_limits_and_off_switch() -> None:
    on = BufferCache.from_limits(Limits())
    assert on is not None and (on.retain, on.linger) == (1 << 30, 10.0)
    assert BufferCache.from_limits(Limits(buffer_retain=0)) is None
    assert BufferCache.from_limits(Limits(buffer_retain=CACHE_FROM - 1)) is None


def test_a_cache_pickles_as_its_settings() -> None:
    cache = BufferCache(64 * MiB, 2.0)
    kept = body(cache, 2 * MiB, b"p")
    copy = pickle.loads(pickle.dumps(cache))
    assert (copy.retain, copy.linger, copy.held) == (64 * MiB, 2.0, 0)
    assert kept[:1] == b"p"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="retain must be >= 0 and linger > 0"):
        BufferCache(-1, 1.0)
    with pytest.raises(ValueError, match="retain must be >= 0 and linger > 0"):
        BufferCache(1, 0)
