"""The native framing: an ``HTTPDataHandler`` served over raw TCP, and its clients.

``service`` answers requests on the engine (``NativeService``: the codec,
the handler call, the outcome of each request as a frame); ``server`` starts
one (``serve``, ``start_server``, ``BackgroundRawServer``); ``client`` holds
``RawDataClient`` (blocking sockets) and ``AsyncRawDataClient`` (a session on
the engine, pipelining). The wire format itself is ``rawproto.proto.native``.
"""

from __future__ import annotations

from .client import AsyncRawDataClient as AsyncRawDataClient
from .client import RawDataClient as RawDataClient
from .server import BackgroundRawServer as BackgroundRawServer
from .server import serve as serve
from .server import start_server as start_server
from .service import NativeService as NativeService
from .service import NativeSession as NativeSession
from .service import RequestMetrics as RequestMetrics

__all__ = [
    "AsyncRawDataClient",
    "BackgroundRawServer",
    "NativeService",
    "NativeSession",
    "RawDataClient",
    "RequestMetrics",
    "serve",
    "start_server",
]
