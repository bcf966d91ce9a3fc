"""What a tinyproto server and client share: the handler, plugins, shutdown, the hook loop.

``Endpoint`` is the base of ``TinyProtoServer`` and ``TinyProtoClient``;
``ActiveConnections`` is their ``active_connections``; addresses are checked
here for both.
"""

from __future__ import annotations

import inspect
import math
import queue
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from dataserve.core.limits import DEFAULT_LIMITS, Limits

from ..proto.tinyproto import MSG_MAX_SIZE
from .bridge import WAKE
from .connection import TinyProtoConnection, TinyProtoPlugin, as_plugin

__all__ = [
    "TINYPROTO_LIMITS",
    "ActiveConnections",
    "Endpoint",
    "TinyProtoConnectionDetails",
    "check_port",
]

# The original has no idle timeout: a tinyproto connection may stay quiet forever.
TINYPROTO_LIMITS = DEFAULT_LIMITS.replace(idle_timeout=math.inf, max_frame_size=MSG_MAX_SIZE)


class TinyProtoConnectionDetails:
    """tinyproto 3.0's ``(host, port)`` holder, accepted wherever an address is."""

    __slots__ = ("host", "port")

    def __init__(self, host: str, port: int) -> None:
        check_port(port)
        self.host = host
        self.port = int(port)

    @property
    def socket_connect_details(self) -> tuple[str, int]:
        return self.host, self.port


def check_port(port: Any) -> int:
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError("Port number should be between 1 and 65535 (or 0 for any free port)")
    return number


class ActiveConnections(list[Any]):
    """Connection objects: iterate, index, ``len``; ``items()`` etc. by connection id."""

    def items(self) -> Iterator[tuple[uuid.UUID, Any]]:
        return ((c.connection_id, c) for c in list(self))

    def keys(self) -> Iterator[uuid.UUID]:
        return (c.connection_id for c in list(self))

    def values(self) -> Iterator[Any]:
        return iter(list(self))

    def get(self, connection_id: uuid.UUID, default: Any = None) -> Any:
        for c in list(self):
            if c.connection_id == connection_id:
                return c
        return default


class Endpoint:
    """What the server and the client share: handler, plugins, shutdown, the hook loop."""

    loop_pass_interval: ClassVar[float] = 0.1
    #: Largest message accepted from a peer (refused with 0xfc above it).
    max_message_size: int = MSG_MAX_SIZE

    def __init__(
        self,
        connection_handler: type[TinyProtoConnection] = TinyProtoConnection,
        connection_plugin_list: Iterable[Any] = (),
    ) -> None:
        self._shutdown = False
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.active_connections: ActiveConnections = ActiveConnections()
        self.connection_handler: type[TinyProtoConnection] = TinyProtoConnection
        self.set_conn_handler(connection_handler)
        self.connection_plugin_list: list[TinyProtoPlugin] = []
        for plugin in connection_plugin_list:
            self.register_connection_plugin(plugin)
        self.limits: Limits = TINYPROTO_LIMITS

    @property
    def shutdown(self) -> bool:
        """Set to ``True`` to end ``start()``."""
        return self._shutdown

    @shutdown.setter
    def shutdown(self, value: bool) -> None:
        self._shutdown = bool(value)
        if value:
            self._events.put((WAKE, None))

    def set_conn_handler(self, handler: Any) -> None:
        if not (inspect.isclass(handler) and issubclass(handler, TinyProtoConnection)):
            raise ValueError("Connection handler must be a subclass of TinyProtoConnection")
        self.connection_handler = handler

    def register_connection_plugin(self, plugin: Any) -> None:
        self.connection_plugin_list.append(as_plugin(plugin))

    def _new_connection(self) -> TinyProtoConnection:
        conn_o = self.connection_handler()
        for plugin in self.connection_plugin_list:
            conn_o.plugin_list.append(plugin)
        return conn_o

    def _limits(self) -> Limits:
        return self.limits.replace(max_frame_size=min(self.max_message_size, MSG_MAX_SIZE))

    def _main_loop(self, on_event: Callable[[str, Any], None]) -> None:
        """Call ``loop_pass`` every interval and ``on_event`` as events arrive, until shutdown."""
        next_pass = time.monotonic() + self.loop_pass_interval
        while not self._shutdown:
            try:
                kind, value = self._events.get(timeout=max(0.0, next_pass - time.monotonic()))
            except queue.Empty:
                kind, value = "", None
            if kind and kind != WAKE:
                on_event(kind, value)
            if time.monotonic() >= next_pass and not self._shutdown:
                self.loop_pass()
                next_pass = time.monotonic() + self.loop_pass_interval

    def _shutdown_active_cons(self) -> None:
        for conn_o in list(self.active_connections):
            conn_o.shutdown = True

    def pre_loop(self) -> None:
        pass

    def post_loop(self) -> None:
        pass

    def loop_pass(self) -> None:
        pass
