"""The bytes of one call in motion, in either client.

What goes out: ``Pieces`` (a body sent in bounded slices) and ``FilePieces``
(a file or path streamed without reading it whole), counted by a ``Meter``
for the ``progress`` callback. What comes back: ``Body`` gathers a whole
reply, ``Sink`` takes a reply streamed ``into`` a file. Nothing here touches
the network: the clients hand these the chunks they move.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import httpx

from ..core.buffers import BodyBuffer
from ..core.errors import ConnectionClosed
from ..core.files import PIECE, Meter, Progress, Writable, is_file, read_piece, remaining

__all__ = [
    "ERROR_HEAD",
    "PIECE",
    "Body",
    "FilePieces",
    "Meter",
    "Pieces",
    "Progress",
    "Sink",
    "Writable",
    "content_length",
    "is_file",
]

# Bodies above this go out in pieces of this size, and files are read in
# pieces of this size. httpcore's blocking writer re-slices what the socket did
# not take yet (``buffer = buffer[n:]``), a copy of the rest each time:
# quadratic in the body (512 MiB took half a minute). Pieces bound each copy
# and the memory a streamed file costs; a Content-Length header, when the size
# is known, keeps the framing plain. (``PIECE``, from the core.)

# An error reply read while streaming is kept only this far: its message is a
# line or two, and a proxy's error page must not cost what the reply would.
ERROR_HEAD = 64 << 10


class Pieces:
    """A request body sent in pieces of ``PIECE``: bytes sliced here."""

    #: A read may wait for a disk or a pipe: the async client reads in a thread.
    blocking = False

    def __init__(self, body: bytes) -> None:
        self.size: int | None = len(body)
        self._view = memoryview(body)
        self._at = 0

    def read(self) -> bytes:
        piece = bytes(self._view[self._at : self._at + PIECE])  # the one copy: h11 keeps bytes
        self._at += len(piece)
        return piece

    def close(self) -> None:
        pass


class FilePieces(Pieces):
    """A file payload, read in pieces as it goes out; ``size`` is what is left
    to send, if known. A path is opened here and closed by ``close()``."""

    blocking = True

    def __init__(self, payload: Any) -> None:
        if isinstance(payload, os.PathLike):
            self.file: Any = open(payload, "rb")  # noqa: SIM115 - closed by close()
            self.owned = True
        else:
            if isinstance(payload, io.TextIOBase):
                raise TypeError("a file payload must be opened in binary mode ('rb')")
            self.file = payload
            self.owned = False
        self.size = remaining(self.file)

    def read(self) -> bytes:
        return read_piece(self.file)

    def close(self) -> None:
        if self.owned:
            self.file.close()


class Sink:
    """Where a reply streamed ``into=`` goes.

    A path is opened only once the reply is known to be a success, so an error
    never truncates an existing file; a file this sink created is removed if
    the transfer fails half-way, so a partial reply is never taken for a
    whole one. A file object is written as given and left open.

    Network reads arrive in pieces of 64 KiB or so; ``collect`` batches them
    to about ``PIECE`` so the async client hops to a thread once per MiB.
    """

    def __init__(self, into: Writable | str | os.PathLike[str], meter: Meter) -> None:
        self.path = into if isinstance(into, (str, os.PathLike)) else None
        self.file: Any = None if self.path is not None else into
        self.meter = meter
        self.created = False
        self._batch: list[bytes] = []
        self._batched = 0

    @property
    def written(self) -> int:
        return self.meter.done

    def __enter__(self) -> Sink:
        if self.path is not None:
            self.created = not os.path.exists(self.path)
            self.file = open(self.path, "wb")
        self.meter.start()
        return self

    def collect(self, chunk: bytes) -> list[bytes] | None:
        """Add a chunk; a batch to ``write`` once there is a piece's worth."""
        self._batch.append(chunk)
        self._batched += len(chunk)
        return self.rest() if self._batched >= PIECE else None

    def rest(self) -> list[bytes]:
        batch, self._batch, self._batched = self._batch, [], 0
        return batch

    def write(self, batch: list[bytes]) -> None:
        for chunk in batch:
            self.file.write(chunk)
            self.meter.add(len(chunk))

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.path is not None:
            self.file.close()
            if exc_type is not None and self.created:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)


def content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


class Body:
    """A whole reply's body, gathered as it arrives.

    A large one whose length is announced (and not content-encoded, so the
    decoded bytes are that long) is copied into one buffer of that size as
    each network read comes in; joining a thousand 64 KiB reads at the end
    instead cost a second copy into freshly faulted memory, half of a
    64 MiB round trip. Anything else is joined, as httpx would.
    """

    __slots__ = ("_buffer", "_chunks")

    def __init__(self, response: httpx.Response) -> None:
        length = content_length(response)
        coding = response.headers.get("content-encoding", "identity").strip().lower()
        large = length is not None and length >= PIECE and coding in ("", "identity")
        self._buffer = BodyBuffer(length) if large and length is not None else None
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        buffer = self._buffer
        if buffer is None or buffer.write(chunk) < len(chunk):
            # httpx checks the length the reply announced: this never runs over
            self._chunks.append(chunk)

    def bytes(self) -> bytes:
        buffer = self._buffer
        if buffer is None:
            return b"".join(self._chunks)
        self._buffer = None
        if not buffer.complete:  # cut short: the transport raises before this
            buffer.discard()
            raise ConnectionClosed("the reply ended before its announced length")
        return buffer.finish()
