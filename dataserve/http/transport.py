"""A transport whose writes within one event-loop turn leave in one send.

uvicorn writes a response's status line and headers, then its body: two
writes, two system calls and, for a small response, two TCP segments. If the
process dies between them (SIGKILL, OOM), the peer has a response cut after
its headers, which a proxy such as nginx can no longer send to another
backend: the client gets a broken reply instead of a retried one. Gathered
and sent together at the end of the loop turn, a small response is all or
nothing, and costs one system call.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CoalescingTransport"]

# Above this, pieces are handed over as they are: copying a large body to
# join it with its headers would cost more than the call it saves, and a
# body that size spans many segments anyway.
_JOIN_LIMIT = 64 * 1024


class CoalescingTransport:
    """Wraps a transport; everything but ``write``/``writelines``/``close``/
    ``abort`` goes straight to it."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False
        # Called on every request: bound here, not looked up through __getattr__.
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._pending.append(data)
        self._size += len(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        self._scheduled = False
        pending, size = self._pending, self._size
        if not pending:
            return
        self._pending, self._size = [], 0
        if self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        elif size <= _JOIN_LIMIT:
            self._transport.write(b"".join(pending))
        else:
            for data in pending:
                self._transport.write(data)

    def close(self) -> None:
        self._flush()  # what was written goes out before the close
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()  # what was written goes out before the FIN
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending, self._size = [], 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
