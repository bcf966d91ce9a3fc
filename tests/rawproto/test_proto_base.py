"""rawproto.proto.base: the shared receive buffer and sentinels."""

from __future__ import annotations

import pickle
import struct

from rawproto.proto.base import NEED_DATA, FrameError, NeedData, ReceiveBuffer


def test_need_data_is_a_singleton_that_survives_pickling() -> None:
    assert NeedData() is NEED_DATA
    assert pickle.loads(pickle.dumps(NEED_DATA)) is NEED_DATA
    assert repr(NEED_DATA) == "NEED_DATA"


def test_frame_error_carries_the_reply_hint() -> None:
    exc = FrameError("too big", 413, fatal=False, request_id=7)
    assert (exc.status, exc.fatal, exc.request_id, exc.message) == (413, False, 7, "too big")


def test_take_copies_exactly_and_consumes() -> None:
    buf = ReceiveBuffer()
    buf.append(b"abc")
    buf.append(memoryview(b"def"))
    assert len(buf) == 6 and buf.peek(2) == b"ab" and buf.byte(1) == ord("b")
    assert buf.take(4) == b"abcd"
    assert buf.take_bytearray(2) == bytearray(b"ef")
    assert not buf and len(buf) == 0
    assert buf.skip(10) == 0


def test_unpack_from_reads_at_the_offset() -> None:
    buf = ReceiveBuffer()
    buf.append(b"x" + struct.pack(">IH", 1, 2))
    buf.skip(1)
    assert buf.unpack_from(struct.Struct(">IH")) == (1, 2)
    assert len(buf) == 0


def test_many_small_frames_from_one_large_read_are_linear() -> None:
    # 200,000 frames of 6 bytes in one 1.2 MB chunk: consuming moves an
    # offset, and the front is dropped only now and then (a quadratic buffer
    # would copy the rest of the chunk for every frame).
    frame = struct.pack(">IH", 9, 1)
    buf = ReceiveBuffer()
    buf.append(frame * 200_000)
    header = struct.Struct(">IH")
    for _ in range(200_000):
        assert buf.unpack_from(header) == (9, 1)
    assert not buf
    assert buf._data == bytearray()  # released once empty


def test_the_consumed_front_is_compacted_when_it_outgrows_the_rest() -> None:
    buf = ReceiveBuffer()
    buf.append(bytes(100_000))
    buf.skip(90_000)
    assert len(buf._data) == 10_000 and buf._start == 0
    buf.skip(1000)
    assert buf._start == 1000  # small consumptions only move the offset
