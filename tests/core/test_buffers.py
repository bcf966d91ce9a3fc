"""dataserve.core.buffers: one buffer per body, filled in place, handed out as ``bytes``."""

from __future__ import annotations

import pytest

from dataserve.core.buffers import BodyBuffer


def test_writes_fill_the_body_and_finish_gives_the_bytes() -> None:
    buf = BodyBuffer(10)
    assert (buf.size, buf.filled, buf.complete) == (10, 0, False)
    assert buf.write(b"hello") == 5
    assert bytes(buf.remaining()) != b"" and len(buf.remaining()) == 5
    assert buf.write(memoryview(b"world")) == 5
    assert buf.complete
    body = buf.finish()
    assert type(body) is bytes and body == b"helloworld"


def test_a_write_takes_only_what_is_left() -> None:
    buf = BodyBuffer(4)
    assert buf.write(b"abcdef") == 4
    assert buf.write(b"more") == 0
    assert buf.finish() == b"abcd"


def test_a_caller_fills_remaining_and_advances() -> None:
    buf = BodyBuffer(6)
    buf.remaining()[:3] = b"abc"
    buf.advance(3)
    view = buf.remaining()
    assert len(view) == 3
    view[:] = b"xyz"
    buf.advance(3)
    assert buf.finish() == b"abcxyz"


def test_finish_before_complete_is_an_error() -> None:
    buf = BodyBuffer(3)
    buf.write(b"a")
    with pytest.raises(ValueError, match="body incomplete: 1 of 3 bytes"):
        buf.finish()


def test_after_finish_the_buffer_can_no_longer_be_written() -> None:
    buf = BodyBuffer(2)
    buf.write(b"ab")
    body = buf.finish()
    with pytest.raises(ValueError):
        buf.view[0] = 0
    assert body == b"ab"
    assert hash(body) == hash(b"ab")  # the hash is of the final bytes


def test_an_empty_body() -> None:
    buf = BodyBuffer(0)
    assert buf.complete and len(buf.remaining()) == 0
    assert buf.finish() == b""


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        BodyBuffer(-1)


def test_discard_releases_the_view() -> None:
    buf = BodyBuffer(8)
    buf.write(b"half")
    buf.discard()
    with pytest.raises(ValueError):
        buf.remaining()


def test_a_large_body_works_the_same() -> None:
    size = 4 * 1024 * 1024 + 123
    buf = BodyBuffer(size)
    chunk = bytes(range(256)) * 1024
    while not buf.complete:
        buf.write(chunk)
    body = buf.finish()
    assert len(body) == size
    assert body[:256] == bytes(range(256)) and body[-123:] == chunk[: size % len(chunk)][-123:]
