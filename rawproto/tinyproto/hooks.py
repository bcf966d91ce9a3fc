"""The thread a ``TinyProtoConnection``'s hooks run on.

``HookThread`` lives the connection's life as the original tinyproto's own
thread did: it waits for the handshake, runs ``pre_loop``, hands each message
in the inbox to ``transmission_received``, calls ``loop_pass`` every
``loop_pass_interval`` seconds, and ``post_loop`` once ``shutdown`` is set
(after every message the peer sent before it went away). A hook that raises
is logged and closes the connection. When the thread ends, the connection
tells its session and closes its socket, and ``on_exit`` is called.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .bridge import CLOSED, DRAIN, READY, WAKE

if TYPE_CHECKING:
    from . import TinyProtoConnection

__all__ = ["HookThread"]

logger = logging.getLogger("rawproto.tinyproto")


class HookThread:
    """The thread that runs ``conn``'s hooks, one at a time, until it closes."""

    def __init__(
        self,
        conn: TinyProtoConnection,
        on_exit: Callable[[TinyProtoConnection], None] | None,
        daemon: bool,
    ) -> None:
        self._conn = conn
        self._on_exit = on_exit
        self._thread = threading.Thread(
            target=self._run, name=f"tinyproto-{conn.connection_id}", daemon=daemon
        )

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        conn = self._conn
        try:
            if self._wait_ready():
                self._loop()
        finally:
            conn._hooks_ended()
            if self._on_exit is not None:
                self._on_exit(conn)

    def _wait_ready(self) -> bool:
        """Until the handshake is done (``False``: the connection closed first)."""
        conn = self._conn
        while True:
            kind, _ = conn._inbox.get()
            if kind == READY:
                assert conn.socket_o is not None  # attached before READY is sent
                conn.peername_details = conn.socket_o.getpeername()
                return True
            if kind in (CLOSED, DRAIN):
                conn._closed_seen = kind == CLOSED
                return False
            if kind == WAKE and conn._shutdown:
                return False

    def _loop(self) -> None:
        conn = self._conn
        if not self._hook(conn.pre_loop):
            return
        interval = conn.loop_pass_interval
        next_pass = time.monotonic() + interval
        # Until shutdown; but when the peer went away, first every message it
        # sent before (the queue ends with the close).
        while not conn._shutdown or (conn._peer_gone and not conn._closed_seen):
            try:
                kind, value = conn._inbox.get(timeout=max(0.0, next_pass - time.monotonic()))
            except queue.Empty:
                kind, value = "", None
            if kind == "msg":
                if not self._hook(conn.transmission_received, conn._received(value)):
                    return
            elif kind == CLOSED:
                conn._closed_seen = True
                conn._lost()  # as the original notices a dropped connection
            elif kind == DRAIN:
                break  # the server stops: every message accepted was handled
            if time.monotonic() >= next_pass and not conn._shutdown:
                if not self._hook(conn.loop_pass):
                    return
                next_pass = time.monotonic() + interval
        self._hook(conn.post_loop)

    def _hook(self, fn: Callable[..., Any], *args: Any) -> bool:
        try:
            fn(*args)
        except Exception:
            logger.exception(
                "%s.%s raised; closing the connection", type(self._conn).__name__, fn.__name__
            )
            self._conn._shutdown = True
            return False
        return True
