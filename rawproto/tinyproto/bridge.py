"""The thread bridge: how a connection's hook thread and the event loop talk.

Each tinyproto connection runs its hooks on a thread of its own, as the
original does, while its socket is served by the engine's loop. The loop
hands the thread what happens through the connection's inbox (a queue of
``(kind, value)``: a message, or one of the markers below); the thread asks
the loop to send a message and blocks on a ``Waiter`` until it is sent, and
wakes the loop with ``call_from_thread``. Nothing polls: each side waits on
a queue or a lock. What the loop reports back that the thread raises is
``MessageRefused`` (turned into ``TinyProtoError`` by ``transmit``) or
``TinyProtoError`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from dataserve.core.errors import DataServeError

from ..engine import Connection

__all__ = [
    "CLOSED",
    "DRAIN",
    "READY",
    "WAKE",
    "MessageRefused",
    "TinyProtoError",
    "Waiter",
    "call_from_thread",
    "close_from_thread",
]

# What the loop puts in a connection's inbox besides ("msg", data):
READY = "ready"  # the handshake is done: the thread may run pre_loop
CLOSED = "closed"  # the connection is gone (messages before it were all queued)
WAKE = "wake"  # look at ``shutdown`` again
DRAIN = "drain"  # the server is shutting down and every message accepted is in the inbox

# How long a closing connection's thread waits for the socket to close.
_CLOSE_WAIT = 5.0


class TinyProtoError(DataServeError):
    """A tinyproto exchange failed: a refused message or connection, a bad handshake."""


class MessageRefused(Exception):
    """The peer refused one of our messages."""


class Waiter:
    """A ``transmit`` call waiting on its thread for the loop to send its message.

    The loop side calls ``done``/``set_result``/``set_exception`` (as on a
    future); the hook's thread blocks in ``wait``: one lock, no task, no
    future chained across threads.
    """

    __slots__ = ("_exc", "_finished", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._exc: BaseException | None = None
        self._finished = False

    def done(self) -> bool:
        return self._finished

    def set_result(self, _: None) -> None:
        if not self._finished:
            self._finished = True
            self._lock.release()

    def set_exception(self, exc: BaseException) -> None:
        if not self._finished:
            self._exc = exc
            self._finished = True
            self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (True; the loop's exception is raised), or ``timeout``
        seconds pass first (False)."""
        if not self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        if self._exc is not None:
            raise self._exc
        return True


def call_from_thread(loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> None:
    """Run ``callback`` on ``loop`` soon (from another thread); nothing if the loop is gone."""
    with contextlib.suppress(RuntimeError):  # the loop is closed at exit
        loop.call_soon_threadsafe(callback)


def close_from_thread(conn: Connection) -> None:
    """Close ``conn`` (what is queued is sent first) and wait, a while, until it is closed."""

    async def close() -> None:
        conn.close()
        await asyncio.wait_for(asyncio.shield(conn.closed_future), _CLOSE_WAIT)

    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(close(), conn.loop).result(_CLOSE_WAIT + 1)
