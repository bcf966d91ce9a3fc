"""dataserve.core.files: what every client needs to take a file as a payload."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from dataserve.core.files import PIECE, Meter, is_file, read_piece, remaining


def test_a_path_or_a_binary_file_is_a_file_and_a_str_never_is(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"abc")
    with open(path, "rb") as f:
        assert is_file(f)
    assert is_file(path)
    assert is_file(io.BytesIO(b"x"))
    for value in ("data.bin", str(path), b"abc", bytearray(b"a"), memoryview(b"a"), None, [1]):
        assert not is_file(value), value


def test_remaining_counts_from_the_position_and_is_none_for_a_pipe(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 1000)
    with open(path, "rb") as f:
        f.read(300)
        assert remaining(f) == 700
        assert f.tell() == 300  # the position is left where it was
    stream = io.BytesIO(b"y" * 50)
    stream.read(20)
    assert remaining(stream) == 30
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as pipe, os.fdopen(write_end, "wb"):
        assert remaining(pipe) is None


def test_read_piece_gives_bytes_and_refuses_text() -> None:
    class Chunks(io.RawIOBase):
        def read(self, size: int = -1) -> Any:
            return bytearray(b"ab")

    assert read_piece(Chunks()) == b"ab" and type(read_piece(Chunks())) is bytes
    assert read_piece(io.BytesIO(b"z" * (PIECE + 5))) == b"z" * PIECE
    with pytest.raises(TypeError, match="returned str"):
        read_piece(io.StringIO("text"))


def test_the_meter_reports_each_step_with_the_total() -> None:
    seen: list[tuple[str, int, int | None]] = []
    meter = Meter(lambda d, done, total: seen.append((d, done, total)), "send", 10)
    meter.start()
    meter.add(4)
    meter.add(6)
    assert seen == [("send", 0, 10), ("send", 4, 10), ("send", 10, 10)]
    quiet = Meter(None, "receive", None)
    quiet.start()
    quiet.add(3)
    assert quiet.done == 3
