"""rawproto: raw TCP framings on asyncio, sharing dataserve's core.

The native framing serves the same ``HTTPDataHandler`` as
``dataserve.run_http_server``, over TCP::

    import rawproto
    rawproto.serve(MyHandler, 5002)                      # blocking server
    with rawproto.RawDataClient(5002) as client:         # blocking client
        client.send("/xdata", [1, 2, 3])

``AsyncRawDataClient`` pipelines many requests on one connection;
``start_server`` and ``BackgroundRawServer`` start a server without
blocking. The tinyproto, tcpy and pyts facades live in ``rawproto.tinyproto``,
``rawproto.tcpy`` and ``rawproto.pyts``; the engine every framing runs on in
``rawproto.engine``, the sans-IO protocols in ``rawproto.proto``.

Importing rawproto never imports Starlette, uvicorn or httpx.
"""

from __future__ import annotations

from .client import AsyncRawDataClient as AsyncRawDataClient
from .client import RawDataClient as RawDataClient
from .engine import Connection as Connection
from .engine import RawServer as RawServer
from .engine import Service as Service
from .engine import Session as Session
from .engine import open_connection as open_connection
from .server import BackgroundRawServer as BackgroundRawServer
from .server import serve as serve
from .server import start_server as start_server
from .service import NativeService as NativeService

__all__ = [
    "AsyncRawDataClient",
    "BackgroundRawServer",
    "Connection",
    "NativeService",
    "RawDataClient",
    "RawServer",
    "Service",
    "Session",
    "open_connection",
    "serve",
    "start_server",
]
