"""``socket_o``: what tinyproto's users call on a connection's socket, and its timeout.

In the original each connection owns a blocking socket, and programs call
it: ``getpeername()`` in ``conn_init``, ``settimeout(90)`` in ``pre_loop``
before a long transfer (tpft, the file-transfer program the seed points
to), ``setsockopt`` for keep-alive. Here the socket belongs to the engine's
event loop, so ``SocketView`` answers for it: addresses taken when the
connection opened (they outlive it), the real descriptor and options, and a
timeout of its own.

The timeout means what it means on a blocking socket: ``receive()`` and
``transmit()`` give up once *nothing has moved* on the connection for that
long (no byte from the peer, none of ours taken by it), however long the
whole message takes. ``wait`` is how they wait: on their own queue or lock,
asking the loop every quarter of the timeout how long the connection has
been still; a connection without a timeout never asks.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import math
import socket
import time
from collections.abc import Callable
from typing import Any

from ..engine import Connection

__all__ = ["SocketView"]

# Below this much of the timeout left, a wait is over (a clock's grain).
_EPSILON = 0.001
# The shortest wait between two questions to the loop.
_MIN_STEP = 0.01
# How long asking the loop may take before the connection counts as still.
_ASK_LOOP = 5.0


class SocketView:
    """``socket_o``: the socket calls tinyproto programs make, for an engine connection.

    ``settimeout``/``gettimeout`` (and ``setblocking``/``getblocking``)
    set how long ``receive()`` and ``transmit()`` wait while nothing moves;
    ``getpeername``/``getsockname`` answer from the addresses taken when the
    connection opened, so they work after it closed (the seed's
    ``conn_shutdown`` asks); ``fileno``, ``setsockopt``, ``getsockopt``,
    ``family``, ``type`` and ``proto`` are the real socket's (``fileno()``
    is -1 and the options raise ``OSError`` once it is closed, as for a
    closed socket). Anything else is looked up on the transport's socket.
    """

    def __init__(self, conn: Connection, timeout: float | None = None) -> None:
        self._conn = conn
        self._timeout: float | None = None
        self.settimeout(timeout)
        # The loop's view of our writes (read on the loop only; see _still_for).
        self._write_buffered = 0
        self._write_moved_at = -math.inf

    # --- the timeout --------------------------------------------------------------

    def settimeout(self, value: float | None) -> None:
        """Seconds ``receive()``/``transmit()`` wait while nothing moves (``None``: no limit)."""
        if value is None:
            self._timeout = None
            return
        if isinstance(value, (str, bytes)):
            raise TypeError("Timeout value must be a number or None")
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise TypeError("Timeout value must be a number or None") from None
        if math.isnan(seconds) or seconds < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = seconds

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """``True``: no timeout; ``False``: a timeout of 0 (as a socket's)."""
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def wait(self, attempt: Callable[[float | None], bool]) -> bool:
        """Call ``attempt(seconds)`` (a wait that returns True once done) until it is
        done, or until nothing moved on the connection for the timeout: False.

        On the thread of a hook, never on the loop.
        """
        timeout = self._timeout
        if timeout is None:
            return attempt(None)
        # The loop is asked every quarter of the timeout, so that it can see
        # our writes drain between two asks: a stall is noticed at most a
        # quarter late.
        step = max(timeout / 4, _MIN_STEP)
        started = time.monotonic()
        left = timeout
        while not attempt(min(step, left)):
            still = min(time.monotonic() - started, self._ask_loop())
            left = timeout - still
            if left < _EPSILON:
                return False
        return True

    def _ask_loop(self) -> float:
        """How long the connection has been still, asked of its loop (from a thread)."""
        answer: concurrent.futures.Future[float] = concurrent.futures.Future()

        def ask() -> None:
            if not answer.set_running_or_notify_cancel():
                return
            try:
                answer.set_result(self._still_for())
            except BaseException as exc:  # handed to the asking thread
                answer.set_exception(exc)

        try:
            self._conn.loop.call_soon_threadsafe(ask)
            return answer.result(_ASK_LOOP)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return math.inf  # the loop is gone, or stuck: nothing moves

    def _still_for(self) -> float:
        """On the loop: seconds since the peer last sent a byte or took one of ours."""
        conn = self._conn
        transport = conn.transport
        if conn.is_closed or transport is None:
            return 0.0  # closed: the waiter is told so at once, no timeout needed
        now = conn.loop.time()
        buffered = transport.get_write_buffer_size()
        if buffered < self._write_buffered:  # the peer read some of what waits
            self._write_moved_at = now
        self._write_buffered = buffered
        return now - max(conn.last_active, self._write_moved_at)

    # --- the socket's own calls -------------------------------------------------------

    def getpeername(self) -> Any:
        return self._conn.peername

    def getsockname(self) -> Any:
        return self._conn.sockname

    def fileno(self) -> int:
        sock = self._socket()
        return -1 if sock is None else int(sock.fileno())

    def setsockopt(self, *args: Any) -> None:
        self._open_socket().setsockopt(*args)

    def getsockopt(self, *args: Any) -> Any:
        return self._open_socket().getsockopt(*args)

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AddressFamily(self._open_socket().family)

    @property
    def type(self) -> socket.SocketKind:
        return socket.SocketKind(self._open_socket().type)

    @property
    def proto(self) -> int:
        return int(self._open_socket().proto)

    def _socket(self) -> Any:
        if self._conn.is_closed:
            return None
        with contextlib.suppress(Exception):
            return self._conn.socket
        return None

    def _open_socket(self) -> Any:
        sock = self._socket()
        if sock is None or sock.fileno() < 0:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return sock

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # our own fields, before __init__ set them (copy, pickle)
            raise AttributeError(name)
        return getattr(self._open_socket(), name)

    def __repr__(self) -> str:
        return (
            f"<tinyproto socket_o fd={self.fileno()} laddr={self.getsockname()} "
            f"raddr={self.getpeername()} timeout={self._timeout}>"
        )
