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

``TLSLayer`` is that TLS under one connection: the handshake within its
deadline, then ciphertext in and plaintext out to the connection, which
sees a ``TLSTransport`` as its transport.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any, Protocol

from ..core.deadlines import Deadline, Watchdog
from ..core.security import TLSConfig

__all__ = ["Plaintext", "TLSLayer", "TLSSession", "TLSTransport", "server_context"]

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
        if n == 0 and len(buffer):
            # CPython reports the peer's close_notify as a read of nothing
            # (nothing ready raises SSLWantReadError instead).
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


class Plaintext(Protocol):
    """What TLS needs of the connection above it (``dataserve.http.protocol``)."""

    transport: Any

    def tls_established(self, transport: TLSTransport) -> None: ...

    def plaintext_buffer(self) -> memoryview: ...

    def plaintext_received(self, nbytes: int) -> None: ...


class TLSLayer:
    """TLS under one connection: the handshake within its deadline, then plaintext up."""

    __slots__ = ("_conn", "_deadline", "_raw", "session", "timeout", "transport")

    def __init__(
        self, conn: Plaintext, raw: Any, tls: TLSConfig, watchdog: Watchdog, timeout: float
    ) -> None:
        self._conn = conn
        self._raw = raw
        self.session = TLSSession(server_context(tls), raw)
        self.timeout = timeout
        #: What the connection writes to, once the handshake is complete.
        self.transport: TLSTransport | None = None
        self._deadline: Deadline | None = watchdog.call_later(timeout, self._no_handshake)

    def received(self, ciphertext: memoryview) -> None:
        """Bytes from the peer: the handshake goes on, or plaintext goes up."""
        session = self.session
        try:
            if not session.feed(ciphertext):
                return  # the handshake goes on
        except (ssl.SSLError, OSError) as exc:
            # Not TLS, or a client that does not trust us: nothing to answer.
            logger.debug("TLS failed: %r", exc)
            self._raw.abort()
            return
        if self.transport is None:
            self.stop()
            self.transport = TLSTransport(self._raw, session)
            self._conn.tls_established(self.transport)
        # (TLS cannot half-close: a connection under it never lingers reading.)
        while not self._raw.is_closing():
            n = session.read_into(self._conn.plaintext_buffer())
            if n == 0:
                return
            if n < 0:
                self._conn.transport.close()  # close_notify: the peer is done
                return
            self._conn.plaintext_received(n)

    def abort(self) -> None:
        self._raw.abort()

    def stop(self) -> None:
        """No handshake deadline any more (the handshake is done, or the connection gone)."""
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None

    def _no_handshake(self) -> None:
        self._deadline = None
        if self.transport is None:
            logger.debug("no TLS handshake within %g s", self.timeout)
            self._raw.abort()
