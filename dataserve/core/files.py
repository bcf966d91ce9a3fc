"""Files as payloads, for every client: what the HTTP and native clients share.

A client's ``send(resource, payload, *, into=None, progress=None)`` takes a
binary file object or an ``os.PathLike`` as the payload (never a ``str``,
which is text), writes a reply ``into`` a ``Writable``, and reports progress
through a ``Progress`` callback that a ``Meter`` drives. No I/O on sockets here.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from typing import Any, Literal, Protocol

__all__ = ["PIECE", "Meter", "Progress", "Writable", "is_file", "read_piece", "remaining"]

#: Files are read, sent and written in pieces of this size.
PIECE = 1 << 20

#: ``progress(direction, done, total)``: ``direction`` is ``'send'`` for the
#: payload and ``'receive'`` for a reply written ``into`` a file; ``done``
#: counts bytes so far; ``total`` is ``None`` when the length is not known.
Progress = Callable[[Literal["send", "receive"], int, "int | None"], None]


class Writable(Protocol):
    """What ``send(..., into=...)`` writes to: a binary file, a socket file, a BytesIO."""

    def write(self, data: bytes, /) -> object: ...


# Values the codecs take, never files: checked by their exact type first (cheap).
_VALUES = frozenset({type(None), str, bytes, bytearray, memoryview, int, float, bool, list, dict})


def is_file(payload: Any) -> bool:
    """A payload to stream: a path (``os.PathLike``) or a file object; never a ``str``."""
    if type(payload) in _VALUES:
        return False
    return isinstance(payload, os.PathLike) or (
        not isinstance(payload, (str, bytes, bytearray, memoryview)) and hasattr(payload, "read")
    )


def remaining(file: Any) -> int | None:
    """Bytes left from the file's position to its end, or None when unknowable
    (a pipe, a socket, a device, a stream that cannot seek)."""
    try:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass  # no descriptor (BytesIO and the like): ask the stream itself
    try:
        if not file.seekable():
            return None
        here = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return max(int(end) - int(here), 0)


def read_piece(file: Any, size: int = PIECE) -> bytes:
    """Up to ``size`` bytes of a binary file, as ``bytes`` (``b""`` at its end)."""
    piece = file.read(size)
    if isinstance(piece, (bytearray, memoryview)):
        return bytes(piece)
    if not isinstance(piece, bytes):
        raise TypeError(f"a file payload's read() returned {type(piece).__name__}")
    return piece


class Meter:
    """Counts the bytes of one direction and reports them to ``progress``."""

    __slots__ = ("direction", "done", "progress", "total")

    def __init__(
        self, progress: Progress | None, direction: Literal["send", "receive"], total: int | None
    ) -> None:
        self.progress = progress
        self.direction: Literal["send", "receive"] = direction
        self.total = total
        self.done = 0

    def start(self) -> None:
        if self.progress is not None:
            self.progress(self.direction, 0, self.total)

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.direction, self.done, self.total)
