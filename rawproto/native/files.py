"""Files as payloads and as replies, for both native clients: no I/O on sockets here.

The clients' ``send(resource, payload, *, into=None, progress=None)`` takes
what ``dataserve.HTTPDataClient.send`` takes:

* a binary file object or an ``os.PathLike`` as the payload, sent as
  ``application/octet-stream`` in pieces (``Source``); a ``str`` is text,
  never a path. The native framing says a frame's length first, so a file
  of known size (a regular file, a seekable stream) goes as one frame whose
  payload is sent piece by piece; a stream of unknown size (a pipe) is first
  spooled to a temporary file, in pieces too, to learn its length;
* ``into``: a writable binary file or a path (``str`` or ``os.PathLike``)
  that receives the reply's body as the server encoded it (``Target``). A
  path is opened only once the reply is known to be a success, so an error
  never truncates an existing file, and a file it created is removed if the
  transfer fails half-way; a file object is written as given and left open;
* ``progress(direction, done, total)``: ``'send'`` as the payload goes out,
  ``'receive'`` as the reply is written ``into`` a file (``Meter``).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Callable
from typing import Any, Literal, Protocol

__all__ = ["PIECE", "Meter", "Progress", "Source", "Target", "Writable", "is_file"]

#: Files are read, sent and written in pieces of this size.
PIECE = 1 << 20
# A stream of unknown length is spooled in memory up to this, then on disk.
_SPOOL_IN_MEMORY = 8 << 20

#: ``progress(direction, done, total)``: ``direction`` is ``'send'`` for the
#: payload and ``'receive'`` for a reply written ``into`` a file; ``done``
#: counts bytes so far; ``total`` is ``None`` when the length is not known.
Progress = Callable[[Literal["send", "receive"], int, "int | None"], None]


class Writable(Protocol):
    """What ``send(..., into=...)`` writes to: a binary file, a socket file, a BytesIO."""

    def write(self, data: bytes, /) -> object: ...


# Values the codec takes, never files: checked by their exact type first (cheap).
_VALUES = frozenset({type(None), str, bytes, bytearray, memoryview, int, float, bool, list, dict})


def is_file(payload: Any) -> bool:
    """A payload to stream: a path (``os.PathLike``) or a file object; never a ``str``."""
    if type(payload) in _VALUES:
        return False
    return isinstance(payload, os.PathLike) or (
        not isinstance(payload, (str, bytes, bytearray, memoryview)) and hasattr(payload, "read")
    )


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


def _remaining(file: Any) -> int | None:
    """Bytes left from the file's position to its end, or None when unknowable."""
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


def _read_piece(file: Any, size: int = PIECE) -> bytes:
    piece = file.read(size)
    if isinstance(piece, (bytearray, memoryview)):
        return bytes(piece)
    if not isinstance(piece, bytes):
        raise TypeError(f"a file payload's read() returned {type(piece).__name__}")
    return piece


class Source:
    """A file payload: its ``size`` and its pieces (``read()``; b"" at the end).

    A path is opened here and closed by ``close()``, as is the spool of a
    stream whose length was not known; a file object is read from its
    position and left open.
    """

    def __init__(self, payload: Any) -> None:
        self._owned: list[Any] = []
        if isinstance(payload, os.PathLike):
            file: Any = open(payload, "rb")  # noqa: SIM115 - closed by close()
            self._owned.append(file)
        elif isinstance(payload, io.TextIOBase):
            raise TypeError("a file payload must be opened in binary mode ('rb')")
        else:
            file = payload
        size = _remaining(file)
        if size is None:
            file, size = self._spool(file)
        self.file = file
        self.size: int = size

    def _spool(self, stream: Any) -> tuple[Any, int]:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        self._owned.append(spool)
        size = 0
        while piece := _read_piece(stream):
            spool.write(piece)
            size += len(piece)
        spool.seek(0)
        return spool, size

    def read(self, size: int = PIECE) -> bytes:
        return _read_piece(self.file, size)

    def close(self) -> None:
        for file in self._owned:
            file.close()
        self._owned.clear()


class Target:
    """Where a reply streamed ``into=`` goes (see the module docstring)."""

    def __init__(self, into: Writable | str | os.PathLike[str], progress: Progress | None) -> None:
        self.path = into if isinstance(into, (str, os.PathLike)) else None
        self.file: Any = None if self.path is not None else into
        self.meter = Meter(progress, "receive", None)
        self.created = False
        self.opened = False

    @property
    def written(self) -> int:
        return self.meter.done

    def open(self, total: int | None) -> None:
        """The reply is a success of ``total`` bytes: open the file (once)."""
        if self.opened:
            return
        self.opened = True
        if self.path is not None:
            self.created = not os.path.exists(self.path)
            self.file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self.meter.total = total
        self.meter.start()

    def write(self, data: bytes | memoryview) -> None:
        if data:
            self.file.write(data)
            self.meter.add(len(data))

    def close(self, failed: bool) -> None:
        """Close a file opened here; a file created here is removed if ``failed``."""
        if self.path is None or self.file is None:
            return
        self.file.close()
        if failed and self.created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
