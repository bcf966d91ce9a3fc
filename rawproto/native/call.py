"""One call of the blocking client: its request going out and its answer coming in.

``Call`` sends the request's header and payload over a ``Link`` (joined in one
write when small; in pieces, counted for ``progress``, when large or a file),
stops the upload when the server answers early (413, 503), then reads until
the answer with its request id has arrived: a large payload straight into one
buffer of its size (``recv_into``), or, for a reply streamed ``into`` a file,
piece by piece into its ``Target``.
"""

from __future__ import annotations

import socket
from typing import Any

from dataserve.core.buffers import BodyBuffer
from dataserve.core.errors import ConnectionClosed

from ..proto.base import ConnectionClosed as ConnectionClosedEvent
from ..proto.native import Error, NativeConnection, Reply
from .exchange import Exchange
from .files import PIECE, Meter, Progress, Source, Target
from .link import READ_SIZE, Link, readable

__all__ = ["Call"]

# A payload below this is joined to its frame header and sent in one call; a
# larger one is sent on its own, in pieces, so that an early error answer
# (413) stops the upload.
_JOIN_BELOW = 64 * 1024
# An answer with this much left to arrive is read into its own buffer.
_LARGE = 64 * 1024


class Call:
    """Request ``request_id`` on ``sock``: ``upload``, then ``answer`` until it
    returns the ``Reply`` or ``Error``. A reply for ``target`` is written
    there as it arrives."""

    def __init__(
        self,
        link: Link,
        sock: socket.socket,
        exchange: Exchange,
        request_id: int,
        target: Target | None,
    ) -> None:
        self._link = link
        self._sock = sock
        self._exchange = exchange
        self._request_id = request_id
        self._target = target

    # --- sending ------------------------------------------------------------------

    def upload(
        self, head: bytes, body: bytes | Source, progress: Progress | None
    ) -> Reply | Error | None:
        """Send the request; an early answer (413, 503) if the server gave one."""
        sock = self._sock
        size = body.size if isinstance(body, Source) else len(body)
        try:
            if progress is None and not isinstance(body, Source) and size <= _JOIN_BELOW:
                sock.sendall(head + body if body else head)
                return None
        except OSError:
            # The server may have answered (413, 503) and closed: read that.
            return self.early(self._drain())
        meter = Meter(progress, "send", size)
        meter.start()
        view = memoryview(body) if not isinstance(body, Source) else None
        sent = 0
        while sent < size or head:
            if view is not None:
                piece: Any = view[sent : sent + PIECE]
            else:
                assert isinstance(body, Source)
                piece = body.read()
                if not piece and sent < size:
                    raise ValueError(f"the file payload ended after {sent} of its {size} bytes")
                piece = piece[: size - sent]  # a file that grew is sent as long as it was
            try:
                # The header goes with the first piece, in one call: the server
                # wakes once for both.
                self._link.send(sock, head, piece)
            except OSError:
                return self.early(self._drain())
            head = b""
            sent += len(piece)
            meter.add(len(piece))
            if sent < size and readable(sock):
                # An early answer (413) stops the upload.
                answer = self.early(sock.recv(READ_SIZE) or None)
                if answer is not None:
                    return answer
        return None

    def _drain(self) -> bytes | None:
        """What the server sent before it closed (``None`` if nothing)."""
        chunks = []
        try:
            while chunk := self._sock.recv(READ_SIZE):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks) or None

    def early(self, data: bytes | None) -> Reply | Error | None:
        """``data`` (``None``: the server closed) received while uploading:
        the answer, if it is there."""
        self._exchange.feed(data)
        return self._parsed(None, data is None)

    # --- receiving ----------------------------------------------------------------

    def answer(self) -> Reply | Error | None:
        """Read once (or one large payload whole) and parse: the answer, if it came."""
        proto = self._exchange.proto
        target = self._target
        size = proto.payload_size
        if size and size - proto.payload_buffered >= _LARGE:
            if target is not None and proto.payload_request_id == self._request_id:
                self._stream_payload(proto, target)
            else:
                self._read_payload(proto)
            return self._parsed(target, False)
        view = self._link.view
        n = self._sock.recv_into(view)
        self._exchange.feed(view[:n] if n else None)
        return self._parsed(target, not n)

    def _parsed(self, target: Target | None, eof: bool) -> Reply | Error | None:
        exchange = self._exchange
        while True:
            event = exchange.next_event()
            if event is None:
                break
            if type(event) is Reply or type(event) is Error:
                if event.request_id == self._request_id:
                    if target is not None and type(event) is Reply:
                        target.open(len(event.body))  # a success: the file is made
                        target.write(event.body)
                    return event
                if event.request_id == 0 and type(event) is Error:
                    raise exchange.connection_error(event)
            elif isinstance(event, ConnectionClosedEvent):
                raise exchange.closed()
        if eof:
            raise exchange.closed()
        return None

    def _read_payload(self, proto: NativeConnection) -> None:
        """The rest of a large payload, read into one buffer of its size."""
        body = BodyBuffer(proto.payload_size)
        flags = 0 if self._link.tls else socket.MSG_WAITALL
        try:
            body.advance(proto.payload_prefix(body.view))
            while not body.complete:
                n = self._sock.recv_into(body.remaining(), 0, flags)
                if not n:
                    raise self._cut_short()
                body.advance(n)
        except BaseException:
            body.discard()
            raise
        proto.receive_payload(body.finish())

    def _stream_payload(self, proto: NativeConnection, target: Target) -> None:
        """The rest of a large payload, written into ``target`` piece by piece."""
        size = proto.payload_size
        target.open(size)
        view = self._link.view
        left = size - proto.payload_prefix(view)
        target.write(view[: size - left])
        while left:
            n = self._sock.recv_into(view, min(left, len(view)))
            if not n:
                raise self._cut_short()
            target.write(view[:n])
            left -= n
        proto.receive_payload(None)

    def _cut_short(self) -> ConnectionClosed:
        return ConnectionClosed(
            f"the server at {self._exchange.address} closed the connection"
            " in the middle of an answer"
        )
