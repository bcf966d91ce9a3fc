"""The clients' bytes in motion: pieces out, the meter, a whole reply, a reply into a file."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import pytest

from dataserve import ConnectionClosed
from dataserve.client.transfer import (
    PIECE,
    Body,
    FilePieces,
    Meter,
    Pieces,
    Sink,
    content_length,
    is_file,
    remaining,
)


def test_pieces_slice_a_body() -> None:
    pieces = Pieces(b"a" * PIECE + b"bc")
    assert pieces.size == PIECE + 2
    assert pieces.read() == b"a" * PIECE
    assert pieces.read() == b"bc"
    assert pieces.read() == b""


def test_what_counts_as_a_file(tmp_path: Path) -> None:
    assert is_file(tmp_path) and is_file(io.BytesIO())
    assert not any(is_file(p) for p in ("a path?", b"bytes", bytearray(), memoryview(b"")))


def test_remaining_is_from_the_position_and_unknown_for_a_pipe() -> None:
    stream = io.BytesIO(b"12345")
    stream.seek(2)
    assert remaining(stream) == 3 and stream.tell() == 2
    read, write = os.pipe()
    with os.fdopen(read, "rb") as pipe, os.fdopen(write, "wb"):
        assert remaining(pipe) is None


def test_file_pieces_take_bytes_like_reads_only() -> None:
    class Views(io.RawIOBase):
        def read(self, n: int = -1) -> memoryview:
            return memoryview(b"view")

    assert FilePieces(Views()).read() == b"view"

    class Strings(io.RawIOBase):
        def read(self, n: int = -1) -> str:
            return "text"

    with pytest.raises(TypeError, match="returned str"):
        FilePieces(Strings()).read()


def test_meter_reports_each_step() -> None:
    seen: list[tuple[str, int, int | None]] = []
    meter = Meter(lambda *args: seen.append(args), "send", 5)
    meter.start()
    meter.add(2)
    meter.add(3)
    assert seen == [("send", 0, 5), ("send", 2, 5), ("send", 5, 5)]
    Meter(None, "receive", None).add(1)  # no callback: counting only


def reply(headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(200, headers=headers)


def test_content_length_only_when_announced() -> None:
    assert content_length(reply({"content-length": "12"})) == 12
    assert content_length(reply({})) is None


def test_body_of_unknown_length_is_joined() -> None:
    body = Body(reply({}))
    body.add(b"ab")
    body.add(b"c")
    assert body.bytes() == b"abc"


def test_large_announced_body_fills_one_buffer_and_must_be_whole() -> None:
    size = PIECE + 10
    body = Body(reply({"content-length": str(size)}))
    body.add(b"x" * PIECE)
    body.add(b"y" * 10)
    assert body.bytes() == b"x" * PIECE + b"y" * 10
    short = Body(reply({"content-length": str(size)}))
    short.add(b"x" * PIECE)
    with pytest.raises(ConnectionClosed, match="before its announced length"):
        short.bytes()


def test_sink_batches_to_a_piece_and_counts() -> None:
    out = io.BytesIO()
    with Sink(out, Meter(None, "receive", None)) as sink:
        assert sink.collect(b"a" * (PIECE - 1)) is None
        batch = sink.collect(b"b")
        assert batch is not None
        sink.write(batch)
        assert sink.collect(b"c") is None
        sink.write(sink.rest())
    assert sink.written == PIECE + 1
    assert out.getvalue() == b"a" * (PIECE - 1) + b"bc"
    assert not out.closed


def test_sink_removes_a_file_it_created_when_the_transfer_fails(tmp_path: Path) -> None:
    path = tmp_path / "reply"
    with pytest.raises(ConnectionClosed), Sink(path, Meter(None, "receive", None)) as sink:
        sink.write([b"half"])
        raise ConnectionClosed("cut")
    assert not path.exists()


def test_sink_keeps_a_file_that_was_there(tmp_path: Path) -> None:
    path = tmp_path / "reply"
    path.write_bytes(b"old")
    with pytest.raises(ConnectionClosed), Sink(path, Meter(None, "receive", None)) as sink:
        sink.write([b"new"])
        raise ConnectionClosed("cut")
    assert path.read_bytes() == b"new"
