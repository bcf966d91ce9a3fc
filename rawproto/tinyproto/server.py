"""``TinyProtoServer``: tinyproto's server on the engine, its hooks on the caller's thread."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any

from dataserve.core.limits import Limits
from dataserve.core.running import START_TIMEOUT, LoopThread, catch_signals
from dataserve.core.security import TLSConfig

from .._security import warn_if_exposed
from ..engine import Connection, RawServer, bind_socket
from .bridge import TinyProtoError
from .connection import TinyProtoConnection
from .endpoint import Endpoint, check_port
from .session import TinySession

__all__ = ["TinyProtoServer"]

logger = logging.getLogger("rawproto.tinyproto")


def _call_conn_hook(hook: Callable[..., Any], conn: TinyProtoConnection) -> None:
    """``hook(conn_o)`` or the original's ``hook(conn_id, conn_o)``."""
    try:
        params = inspect.signature(hook).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_two = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):
        takes_two = True
    if takes_two:
        hook(conn.connection_id, conn)
    else:
        hook(conn)


class TinyService:
    """The engine ``Service`` of a ``TinyProtoServer``."""

    def __init__(self, owner: TinyProtoServer, limits: Limits) -> None:
        self.owner = owner
        self.limits = limits
        self.open = 0

    def session(self, conn: Connection) -> TinySession:
        conn_o = self.owner._new_connection()
        return TinySession(conn, conn_o, self.limits.max_frame_size, self._admit)

    def _admit(self, session: TinySession) -> bool:
        limit = self.owner.connection_limit
        if limit is not None and self.open >= limit:
            return False
        self.open += 1
        session.conn.closed_future.add_done_callback(self._closed)
        self.owner._events.put(("init", session.owner))
        return True

    def _closed(self, _: asyncio.Future[None]) -> None:
        self.open -= 1

    async def aclose(self) -> None:
        pass


class TinyProtoServer(Endpoint):
    """tinyproto's server: ``add_addr(host, port)``, ``set_conn_handler(cls)``, ``start()``.

    ``TinyProtoServer()`` as in 2.x, or tinyproto 3.0's
    ``TinyProtoServer(listen_addresses, connection_handler, connection_limit,
    connection_plugin_list)``. ``start()`` blocks until ``shutdown`` is set
    (or SIGTERM arrives), then stops gracefully. ``tls`` serves TLS on every
    address.
    """

    def __init__(
        self,
        listen_addresses: Iterable[Any] | None = None,
        connection_handler: type[TinyProtoConnection] = TinyProtoConnection,
        connection_limit: int | None = None,
        connection_plugin_list: Iterable[Any] = (),
        *,
        tls: TLSConfig | None = None,
    ) -> None:
        super().__init__(connection_handler, connection_plugin_list)
        self.listen_addrs: list[tuple[str, int]] = []
        for details in listen_addresses or ():
            self.add_addr(details.host, details.port)
        self.listen_socks: list[Any] = []
        self.connection_limit: int | None = connection_limit
        self.tls = tls
        self._servers: list[RawServer] = []

    @property
    def ports(self) -> list[int]:
        """The bound ports, in ``add_addr`` order (known once ``pre_loop`` runs)."""
        return [s.getsockname()[1] for s in self.listen_socks]

    def add_addr(self, ipaddr: str, port: int) -> None:
        port = check_port(port)
        try:
            ipaddress.ip_address(ipaddr)
        except ValueError:
            raise ValueError("Incorrect ip address") from None
        self.listen_addrs.append((ipaddr, port))

    def start(self) -> None:
        """Listen, run the hooks until ``shutdown`` (or SIGTERM), then stop gracefully."""
        if self.listen_socks:
            raise TinyProtoError("There are already active listeners")
        if not self.listen_addrs:
            raise TinyProtoError("No addresses defined for listening")
        loop = LoopThread.shared()
        limits = self._limits()
        service = TinyService(self, limits)
        restore = self._stop_on_sigterm()
        try:
            for host, port in self.listen_addrs:
                warn_if_exposed("tinyproto", host, self.tls, logger)
                self.listen_socks.append(bind_socket(host, port))
            for sock, (host, _) in zip(self.listen_socks, self.listen_addrs, strict=True):
                server = RawServer(service, host=host, limits=limits, sock=sock, tls=self.tls)
                self._servers.append(loop.run(server.start(), timeout=START_TIMEOUT))
                logger.info("tinyproto server listening on %s:%d", host, server.port)
            self.pre_loop()
            self._main_loop(self._on_event)
            self.post_loop()
        finally:
            # Graceful first: each connection handles what it accepted and
            # closes; then whatever is left is told to stop.
            self._stop_servers(loop)
            self._shutdown_active_cons()
            restore()

    def _stop_on_sigterm(self) -> Callable[[], None]:
        """SIGTERM ends ``start()`` gracefully (main thread only); returns the undo.

        Ctrl-C stays tinyproto's: a ``KeyboardInterrupt`` out of ``start()``,
        after the same graceful stop.
        """
        return catch_signals(lambda signum, frame: self._terminate(), (signal.SIGTERM,))

    def _terminate(self) -> None:
        self.shutdown = True

    def _on_event(self, kind: str, conn_o: TinyProtoConnection) -> None:
        if kind == "init":
            _call_conn_hook(self.conn_init, conn_o)
            self.active_connections.append(conn_o)
            conn_o._start(self._thread_ended, daemon=True)
        elif kind == "ended":
            # One more pass while the connection is still listed, so the server
            # sees the last state its hooks left (the seed's SRVQUIT flag).
            self.loop_pass()
            with contextlib.suppress(ValueError):
                self.active_connections.remove(conn_o)
            _call_conn_hook(self.conn_shutdown, conn_o)

    def _thread_ended(self, conn_o: TinyProtoConnection) -> None:
        self._events.put(("ended", conn_o))

    def _stop_servers(self, loop: LoopThread) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            with contextlib.suppress(Exception):
                loop.run(server.stop(self.limits.shutdown_timeout), timeout=None)
        socks, self.listen_socks = self.listen_socks, []
        for sock in socks:
            sock.close()

    def conn_init(self, conn_id: Any, conn_o: Any = None) -> None:
        pass

    def conn_shutdown(self, conn_id: Any, conn_o: Any = None) -> None:
        pass
