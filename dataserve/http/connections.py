"""Counting open HTTP connections: uvicorn's protocol, one gauge step per connection.

ASGI never tells an app that a connection opened or closed, so the count
is kept by the protocol object uvicorn creates for each connection. The
class is importable by name, as uvicorn's worker processes need.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..core.metrics import TransportMetrics, metrics
from ..ops.config import OpsConfig
from .protocol import DataServeHttpProtocol

__all__ = ["CountedHttpProtocol", "http_protocol"]

_recorder: TransportMetrics | None = None


def _http() -> TransportMetrics:
    global _recorder
    if _recorder is None:
        _recorder = metrics().transport("http")
    return _recorder


class CountedHttpProtocol(DataServeHttpProtocol):
    """The HTTP protocol that also counts its connections in the metrics."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _http().connection_opened()
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            _http().connection_closed()


def http_protocol(base: Any, ops: OpsConfig | None) -> Any:
    """The protocol for an app with operations config ``ops``: ``base``, or its
    counting subclass when the app has metrics on."""
    if base is not DataServeHttpProtocol:
        return base  # the h11 fallback or the caller's own: not counted
    if isinstance(ops, OpsConfig) and ops.metrics:
        return CountedHttpProtocol
    return base
