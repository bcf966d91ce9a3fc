"""``TinyProtoClient``: tinyproto's client; each connection runs on the shared loop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

from dataserve.core.running import LoopThread

from .._security import client_context
from ..engine import open_connection
from .bridge import TinyProtoError
from .connection import TinyProtoConnection
from .endpoint import Endpoint, check_port
from .session import TinySession

__all__ = ["TinyProtoClient"]


#: Seconds to connect, and each connection's socket timeout: the original's 5.
ORIGINAL_TIMEOUT = 5.0


class TinyProtoClient(Endpoint):
    """tinyproto's client: ``connect_to(host, port)`` returns an index into ``active_connections``.

    ``start()`` (optional, as in the original) runs ``pre_loop``,
    ``loop_pass`` every ``loop_pass_interval`` until ``shutdown``, then
    ``post_loop`` and closes the connections. ``timeout`` (5 s, as in the
    original) bounds connecting and is each connection's ``socket_o``
    timeout (see ``set_timeout``). TLS when ``tls=True`` or any of
    ``ca_file``, ``cert``, ``verify=False`` is given (the server is verified
    unless ``verify=False``).
    """

    def __init__(
        self,
        connection_handler: type[TinyProtoConnection] = TinyProtoConnection,
        connection_plugin_list: Iterable[Any] = (),
        timeout: float = ORIGINAL_TIMEOUT,
        *,
        tls: bool | ssl.SSLContext = False,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(connection_handler, connection_plugin_list)
        self.socket_timeout: float = timeout
        self.ssl_context = client_context(tls, verify=verify, ca_file=ca_file, cert=cert)

    def set_timeout(self, t: float) -> None:
        """The timeout of each connection made from now on, as in the original.

        It bounds connecting and the handshake, and it is the connection's
        ``socket_o`` timeout: ``receive()`` and ``transmit()`` give up after
        ``t`` seconds in which nothing moves (``socket_o.settimeout`` changes
        it for one connection).
        """
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            raise ValueError("Timeout value must be a positive number")
        self.socket_timeout = t

    def connect_to(self, host: Any, port: int | None = None) -> int:
        """Connect and complete the handshake; return the index in ``active_connections``.

        ``host`` may be a ``TinyProtoConnectionDetails`` (tinyproto 3.0).
        Raises ``TinyProtoError`` if the connection fails or is refused.
        """
        if port is None:
            host, port = host.host, host.port
        port = check_port(port)
        conn_o = self._new_connection()
        conn_o.remote_details = (host, port)
        limits = self._limits()
        max_size = limits.max_frame_size

        async def connect() -> None:
            conn = await open_connection(
                lambda c: TinySession(c, conn_o, max_size),
                host,
                port,
                limits=limits,
                timeout=self.socket_timeout,
                ssl_context=self.ssl_context,
            )
            assert isinstance(conn.session, TinySession)
            try:
                await asyncio.wait_for(asyncio.shield(conn.session.ready), self.socket_timeout)
            except BaseException:
                conn.abort()
                raise

        try:
            LoopThread.shared().run(connect(), timeout=self.socket_timeout + 5)
        except TinyProtoError as exc:
            raise TinyProtoError(f"Initialisation error with {host}:{port}: {exc}") from None
        except (OSError, asyncio.TimeoutError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
            raise TinyProtoError(f"cannot connect to {host}:{port}: {reason}") from exc
        # As the original's client socket: its timeout is the client's, until a
        # hook changes it (tpft sets 90 s in pre_loop for long transfers).
        assert conn_o.socket_o is not None
        conn_o.socket_o.settimeout(self.socket_timeout)
        # Client connections' threads are not daemons (as in tinyproto 2.x): the
        # program waits for them, so post_loop runs and the socket closes cleanly.
        conn_o._start(None, daemon=False)
        self.active_connections.append(conn_o)
        return len(self.active_connections) - 1

    def start(self) -> None:
        self.pre_loop()
        self._main_loop(lambda kind, value: None)
        self.post_loop()
        self._shutdown_active_cons()
