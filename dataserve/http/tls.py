"""TLS inside the HTTP protocol, with a deadline for the handshake.

uvicorn gives the listener's SSL context to the event loop, whose handshake
timeout is 60 s and cannot be set through uvicorn (its worker processes build
their servers themselves); and ``loop.start_tls`` on a connection that is
already reading races with the first bytes on uvloop. So with TLS the
listener accepts plain TCP and the protocol runs TLS itself, with the
standard library's ``ssl.SSLObject`` over two memory BIOs (as asyncio's own
``sslproto`` does): a peer that does not complete a handshake within
``handshake_timeout`` is closed, as on the raw TCP listener.

Decrypted bytes are read straight into the buffer the protocol hands over
(``SSLObject.read(n, buffer)``): a TLS body lands in its own buffer too.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any

from ..core.security import TLSConfig

__all__ = ["TLSSession", "TLSTransport", "server_context"]

logger = logging.getLogger("dataserve.http")

# Plaintext is encrypted in pieces of this size, so a large reply does not
# sit in memory twice over at once (plaintext, whole ciphertext).
_WRITE_PIECE = 256 * 1024

# One context per TLS setting and process (a context is not picklable: the
# workers' config carries the file names).
_contexts: dict[TLSConfig, ssl.SSLContext] = {}


def server_context(tls: TLSConfig) -> ssl.SSLContext:
    context = _contexts.get(tls)
    if context is None:
        context = _contexts[tls] = tls.server_context()
    return context


class TLSSession:
    """The TLS state of one connection: ciphertext in, plaintext out, and back."""

    __slots__ = ("_in", "_out", "closed", "established", "obj", "raw")

    def __init__(self, context: ssl.SSLContext, raw: Any) -> None:
        self.raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self._in, self._out, server_side=True)
        self.established = False
        self.closed = False

    def feed(self, ciphertext: Any) -> bool:
        """Take bytes from the peer; True once the handshake is complete.

        Raises ``ssl.SSLError`` (or ``OSError``) if the peer breaks TLS.
        """
        self._in.write(ciphertext)
        if not self.established:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return False
            self.established = True
            self._flush()
        return True

    def read_into(self, buffer: memoryview) -> int:
        """Decrypt into ``buffer``: bytes written; 0 when nothing is ready.

        Returns -1 once the peer has closed TLS (close_notify).
        """
        try:
            n: int = self.obj.read(len(buffer), buffer)  # type: ignore[assignment]
        except ssl.SSLWantReadError:
            self._flush()  # TLS 1.3 may have something to say (a key update)
            return 0
        except ssl.SSLZeroReturnError:
            return -1
        return n

    def write(self, data: Any) -> None:
        view = memoryview(data)
        for start in range(0, len(view), _WRITE_PIECE):
            self.obj.write(view[start : start + _WRITE_PIECE])
            self._flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.established:
            with contextlib.suppress(ssl.SSLError, OSError):
                self.obj.unwrap()  # close_notify
            self._flush()

    def _flush(self) -> None:
        if self._out.pending:
            self.raw.write(self._out.read())


class TLSTransport:
    """What the protocol writes to over TLS: the plain transport's API, encrypting."""

    def __init__(self, raw: Any, session: TLSSession) -> None:
        self._raw = raw
        self._session = session
        self.pause_reading = raw.pause_reading
        self.resume_reading = raw.resume_reading
        self.is_closing = raw.is_closing
        self.get_write_buffer_size = raw.get_write_buffer_size

    def write(self, data: Any) -> None:
        if not self._raw.is_closing():
            self._session.write(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def can_write_eof(self) -> bool:
        return False  # TLS cannot half-close

    def write_eof(self) -> None:
        raise RuntimeError("TLS cannot half-close")

    def close(self) -> None:
        if not self._raw.is_closing():
            self._session.close()
        self._raw.close()

    def abort(self) -> None:
        self._raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        obj = self._session.obj
        if name == "sslcontext":
            return obj.context
        if name == "ssl_object":
            return obj
        if name == "peercert":
            return obj.getpeercert()
        if name == "cipher":
            return obj.cipher()
        return self._raw.get_extra_info(name, default)
