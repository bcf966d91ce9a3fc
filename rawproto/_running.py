"""Running an engine ``Service`` from blocking code: in the foreground or in the background.

``serve_until_signalled`` is what the seeds' blocking calls (tcpy's
``listen()``, pyts' ``startServer()``) do: bind, announce the address, serve
until Ctrl-C or SIGTERM, then stop gracefully (requests in flight finish).
``BackgroundService`` runs the same server on the shared loop thread and
returns once it accepts connections, for programs that do other things (and
for tests).

Both serve TLS when given a ``TLSConfig``, and warn (on the
``rawproto.<framing>`` logger) when a token-less framing is bound beyond
loopback without client certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable

from dataserve.core.limits import Limits
from dataserve.core.security import TLSConfig

from ._loop import LoopThread, run
from ._security import warn_if_exposed
from .engine import RawServer, Service

__all__ = ["BackgroundService", "serve_until_signalled"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _server(
    service: Service, host: str, port: int, limits: Limits, tls: TLSConfig | None, framing: str
) -> RawServer:
    warn_if_exposed(framing, host, tls, logging.getLogger(f"rawproto.{framing}"))
    return RawServer(service, host=host, port=port, limits=limits, tls=tls)


def serve_until_signalled(
    service: Service,
    host: str,
    port: int,
    limits: Limits,
    banner: Callable[[str, int], None],
    *,
    tls: TLSConfig | None = None,
    framing: str = "raw",
) -> None:
    """Serve on ``host:port`` until SIGINT or SIGTERM, then stop gracefully.

    ``banner(host, port)`` runs once the port accepts connections (``port``
    is the real one when 0 was asked for). Signals are only caught in the
    main thread; elsewhere this serves until the process ends.
    """

    async def main() -> None:
        server = await _server(service, host, port, limits, tls, framing).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        try:
            banner(host, server.port)
            await stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await server.stop()

    # A Ctrl-C that lands before the handlers are installed is not an error.
    with contextlib.suppress(KeyboardInterrupt):
        run(main())


class BackgroundService:
    """A ``RawServer`` for ``service`` on the shared loop thread."""

    def __init__(
        self,
        service: Service,
        host: str,
        port: int,
        limits: Limits,
        *,
        tls: TLSConfig | None = None,
        framing: str = "raw",
    ) -> None:
        self._server = _server(service, host, port, limits, tls, framing)
        self._thread = LoopThread.shared()

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> BackgroundService:
        """Bind and return once connections are accepted."""
        self._thread.run(self._server.start())
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully: requests in flight finish (up to ``timeout``)."""
        self._thread.run(self._server.stop(timeout))
