"""Running an engine ``Service`` from blocking code: in the foreground or in the background.

``serve_service`` is what the seeds' blocking calls (tcpy's ``listen()``,
pyts' ``startServer()``) do: bind, announce the address, serve until Ctrl-C
or SIGTERM (the core's ``serve_until_signalled``), then stop gracefully
(requests in flight finish).
``BackgroundService`` runs the same server on the shared loop thread and
returns once it accepts connections, for programs that do other things (and
for tests).

Both serve TLS when given a ``TLSConfig``, and warn (on the
``rawproto.<framing>`` logger) when a token-less framing is bound beyond
loopback without client certificates.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, TypeVar

from dataserve.core.limits import Limits
from dataserve.core.running import LoopThread, serve_until_signalled
from dataserve.core.security import TLSConfig

from .._security import warn_if_exposed
from .server import RawServer, Served

__all__ = ["BackgroundService", "FacadeServer", "serve_service"]


def _server(
    service: Served, host: str, port: int, limits: Limits, tls: TLSConfig | None, framing: str
) -> RawServer:
    warn_if_exposed(framing, host, tls, logging.getLogger(f"rawproto.{framing}"))
    return RawServer(service, host=host, port=port, limits=limits, tls=tls)


def serve_service(
    service: Served,
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

    async def serve(stop: asyncio.Event) -> None:
        server = await _server(service, host, port, limits, tls, framing).start()
        try:
            banner(host, server.port)
            await stop.wait()
        finally:
            await server.stop()

    serve_until_signalled(serve)


class BackgroundService:
    """A ``RawServer`` for ``service`` on the shared loop thread."""

    def __init__(
        self,
        service: Served,
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


_F = TypeVar("_F", bound="FacadeServer")


class FacadeServer(ABC):
    """What a seed facade's server does the same way whatever its wire format:
    serve in the foreground until a signal (``_serve_until_signalled``, behind
    the seed's own blocking call), or in the background (``start()``,
    ``stop()``, ``with``).

    A subclass names its framing and says how it keeps its address (the
    seeds spell the attributes differently).
    """

    FRAMING: ClassVar[str]
    limits: Limits
    tls: TLSConfig | None
    _background: BackgroundService | None = None

    @property
    def threads(self) -> int:
        """How many handlers run at once: ``limits.handler_threads`` under the seeds' name.

        One setting, not two, so ``--handler-threads`` (which replaces
        ``limits``) and ``--threads`` (which sets this) mean the same thing.
        """
        return self.limits.handler_threads

    @threads.setter
    def threads(self, value: int) -> None:
        self.limits = self.limits.replace(handler_threads=value)

    @abstractmethod
    def _service(self) -> Served:
        """The engine service for the current routes or commands."""

    @abstractmethod
    def _address(self) -> tuple[str, int]:
        """Where to listen, as the user gave it."""

    @abstractmethod
    def _bound(self, port: int) -> None:
        """The port actually bound (the real one when 0 was asked for)."""

    def _serve_until_signalled(self, announce: Callable[[str, int], str]) -> None:
        def banner(host: str, port: int) -> None:
            self._bound(port)
            print(announce(host, port), flush=True)

        host, port = self._address()
        serve_service(
            self._service(), host, port, self.limits, banner, tls=self.tls, framing=self.FRAMING
        )

    def start(self: _F) -> _F:
        """Serve in the background; returns once connections are accepted."""
        if self._background is not None:
            raise RuntimeError("the server is already running")
        host, port = self._address()
        background = BackgroundService(
            self._service(), host, port, self.limits, tls=self.tls, framing=self.FRAMING
        )
        self._background = background.start()
        self._bound(background.port)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop a server started with ``start()``; running handlers finish first."""
        background, self._background = self._background, None
        if background is not None:
            background.stop(timeout)

    def __enter__(self: _F) -> _F:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
