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
import tempfile
from typing import Any

from dataserve.core.files import (
    PIECE,
    Meter,
    Progress,
    Writable,
    is_file,
    read_piece,
    remaining,
)

__all__ = ["PIECE", "Meter", "Progress", "Source", "Target", "Writable", "is_file"]

# A stream of unknown length is spooled in memory up to this, then on disk.
_SPOOL_IN_MEMORY = 8 << 20


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
        size = remaining(file)
        if size is None:
            file, size = self._spool(file)
        self.file = file
        self.size: int = size

    def _spool(self, stream: Any) -> tuple[Any, int]:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        self._owned.append(spool)
        size = 0
        while piece := read_piece(stream):
            spool.write(piece)
            size += len(piece)
        spool.seek(0)
        return spool, size

    def read(self, size: int = PIECE) -> bytes:
        return read_piece(self.file, size)

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
