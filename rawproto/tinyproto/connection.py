"""``TinyProtoConnection``: the connection object users subclass, and its hook thread.

Its hooks (``pre_loop``, ``transmission_received``, ``loop_pass``,
``post_loop``) run on the connection's own thread, one at a time
(``rawproto.tinyproto.hooks``); messages reach it through its inbox, and
``transmit`` hands a message to the loop and blocks until it is sent
(``rawproto.tinyproto.bridge``). The engine side of the same connection is
``rawproto.tinyproto.session``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..engine.loop import LoopThread
from ..proto.tinyproto import MSG_MAX_SIZE
from .bridge import (
    CLOSED,
    DRAIN,
    WAKE,
    MessageRefused,
    TinyProtoError,
    Waiter,
    call_from_thread,
    close_from_thread,
)
from .hooks import HookThread
from .sockview import SocketView

if TYPE_CHECKING:
    from .session import TinySession

__all__ = ["TinyProtoConnection", "TinyProtoPlugin", "as_plugin"]

logger = logging.getLogger("rawproto.tinyproto")


class TinyProtoPlugin:
    """Transforms every message: ``msg_transmit`` on the way out, ``msg_receive`` in."""

    def msg_transmit(self, msg: Any) -> Any:
        return msg

    def msg_receive(self, msg: Any) -> Any:
        return msg


def as_plugin(plugin: Any) -> TinyProtoPlugin:
    """A plugin instance from a ``TinyProtoPlugin`` subclass or instance."""
    if inspect.isclass(plugin) and issubclass(plugin, TinyProtoPlugin):
        return plugin()
    if isinstance(plugin, TinyProtoPlugin):
        return plugin
    raise ValueError("Not a subclass of TinyProtoPlugin")


class TinyProtoConnection:
    """One tinyproto connection; subclass it and override the hooks.

    Hooks: ``pre_loop()`` once after the handshake, ``transmission_received(msg)``
    for each message, ``loop_pass()`` every ``loop_pass_interval`` seconds,
    ``post_loop()`` once at the end. Methods: ``transmit(msg)``,
    ``receive()``, ``register_plugin(plugin)``, ``is_alive()``, ``join()``.
    Attributes: ``shutdown`` (set it to close), ``socket_o`` (a
    ``SocketView``: ``settimeout()``, ``getpeername()``, ``fileno()``...),
    ``peername_details``, ``plugin_list``, ``connection_lock``.
    """

    #: Seconds between ``loop_pass`` calls.
    loop_pass_interval: ClassVar[float] = 0.1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # tinyproto 3.0 passes (socket_object, socket_already_up, remote_details,
        # connection_plugin_list); the socket is the engine's here, so only the
        # plugins are taken from those arguments.
        plugins = kwargs.get("connection_plugin_list", args[3] if len(args) > 3 else ())
        self._shutdown = False
        self._peer_gone = False
        self._closed_seen = False  # the close marker was taken from the inbox
        self.socket_o: SocketView | None = None
        self.is_socket_up = False
        self.remote_details: Any = kwargs.get("remote_details")
        self.plugin_list: list[TinyProtoPlugin] = []
        self.connection_lock = threading.RLock()
        self.peername_details: Any = None
        self.connection_id = uuid.uuid4()
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._session: TinySession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hooks: HookThread | None = None
        for plugin in plugins or ():
            self.register_plugin(plugin)

    # --- hooks -----------------------------------------------------------------

    def pre_loop(self) -> None:
        pass

    def post_loop(self) -> None:
        pass

    def loop_pass(self) -> None:
        pass

    def transmission_received(self, msg: bytearray) -> None:
        pass

    # --- methods ---------------------------------------------------------------

    @property
    def shutdown(self) -> bool:
        """Set to ``True`` to close the connection (``post_loop`` runs first)."""
        return self._shutdown

    @shutdown.setter
    def shutdown(self, value: bool) -> None:
        self._shutdown = bool(value)
        if value:
            self._inbox.put((WAKE, None))  # the thread notices at once

    def register_plugin(self, plugin: Any) -> None:
        self.plugin_list.append(as_plugin(plugin))

    def transmit(self, msg: bytes | bytearray | memoryview) -> None:
        """Send one message; returns once the peer accepted it and it is on its way.

        Raises ``TinyProtoError`` if the peer refuses it (too large). On a
        closed connection sets ``shutdown`` and returns, as the original does.
        """
        with self.connection_lock:
            for plugin in self.plugin_list:
                msg = plugin.msg_transmit(msg)
            if isinstance(msg, str) or not isinstance(msg, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"transmit takes bytes, not {type(msg).__name__} (encode text first)"
                )
            if len(msg) > MSG_MAX_SIZE:
                raise TinyProtoError(
                    f"a tinyproto message is at most {MSG_MAX_SIZE} bytes, not {len(msg)}"
                )
            session, loop = self._session, self._loop
            if session is None or loop is None or session.conn.is_closed:
                self._lost()
                return
            if LoopThread.shared().in_loop_thread:
                raise RuntimeError("transmit blocks: call it from a hook, not from the event loop")
            waiter = Waiter()
            try:
                loop.call_soon_threadsafe(session.transmit, bytes(msg), waiter)
            except RuntimeError:  # the loop is closed: so is the connection
                self._lost()
                return
            try:
                sent = self._wait(waiter.wait)
            except MessageRefused as exc:
                raise TinyProtoError(f"Transmission rejected: {exc}") from None
            except (ConnectionError, OSError, asyncio.CancelledError):
                self._lost()
                return
            if not sent:
                self._timed_out("transmit")

    def receive(self) -> bytearray:
        """Wait for the next message and return it (instead of ``transmission_received``).

        Returns an empty ``bytearray`` and sets ``shutdown`` once the connection
        is closed, as the original does.
        """
        while True:
            try:
                kind, value = self._next_item()
            except queue.Empty:
                return bytearray()  # closed, and every message taken
            except TimeoutError:
                self._timed_out("receive")
                return bytearray()
            if kind == "msg":
                return self._received(value)
            if kind == CLOSED:
                self._closed_seen = True
                self._lost()
                return bytearray()
            if kind == DRAIN:
                self._shutdown = True
                return bytearray()
            if kind == WAKE and self._shutdown:
                return bytearray()

    def _next_item(self) -> tuple[str, Any]:
        """The next item of the inbox for ``receive()``; ``TimeoutError`` past the
        socket's timeout, ``queue.Empty`` once closed and empty."""
        if self._closed_seen:
            return self._inbox.get(block=False)
        got: list[tuple[str, Any]] = []

        def attempt(seconds: float | None) -> bool:
            try:
                got.append(self._inbox.get(timeout=seconds))
            except queue.Empty:
                return False
            return True

        if not self._wait(attempt):
            raise TimeoutError
        return got[0]

    def _wait(self, attempt: Callable[[float | None], bool]) -> bool:
        """``attempt`` under ``socket_o``'s timeout (no limit before the socket is up)."""
        view = self.socket_o
        return attempt(None) if view is None else view.wait(attempt)

    def _timed_out(self, call: str) -> None:
        """As the original on ``socket.timeout``: ``shutdown`` becomes true."""
        timeout = self.socket_o.gettimeout() if self.socket_o is not None else None
        logger.warning(
            "Shutting down connection on %s: nothing moved for %g s (socket_o timeout)",
            call,
            timeout or 0.0,
        )
        self._shutdown = True

    def _lost(self) -> None:
        """The peer is gone: ``shutdown`` becomes true, as in the original.

        Messages that arrived before it went are still handed to the hooks:
        they were accepted, so they are not dropped.
        """
        self._peer_gone = True
        self._shutdown = True

    def is_alive(self) -> bool:
        return self._hooks is not None and self._hooks.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self._hooks is not None:
            self._hooks.join(timeout)

    # --- internals -------------------------------------------------------------

    def _attach(self, session: TinySession) -> None:
        self._session = session
        self._loop = session.conn.loop
        self.socket_o = SocketView(session.conn)
        self.is_socket_up = True

    def _start(self, on_exit: Callable[[TinyProtoConnection], None] | None, daemon: bool) -> None:
        self._hooks = HookThread(self, on_exit, daemon)
        self._hooks.start()

    def _received(self, data: bytearray) -> bytearray:
        session, loop = self._session, self._loop
        if session is not None and loop is not None:
            # Counted here, on this thread (the only one writing these); the
            # loop is woken only if it stopped reading for this connection.
            session.taken_bytes += len(data)
            session.taken_messages += 1
            if session.holding:
                call_from_thread(loop, session.conn.update_flow)
        for plugin in reversed(self.plugin_list):
            data = plugin.msg_receive(data)
        return data

    def _hooks_ended(self) -> None:
        """The hook thread is done: tell a shutting-down server so, and close."""
        session, loop = self._session, self._loop
        if session is not None and loop is not None:
            call_from_thread(loop, session.hooks_done)
        self.is_socket_up = False
        if session is not None:
            close_from_thread(session.conn)
