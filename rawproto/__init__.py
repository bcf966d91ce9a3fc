"""rawproto: raw TCP framings on asyncio, sharing dataserve's core.

The native framing serves the same ``HTTPDataHandler`` as
``dataserve.run_http_server``, over TCP::

    import rawproto
    rawproto.serve(MyHandler, 5002)                      # blocking server
    with rawproto.RawDataClient(5002) as client:         # blocking client
        client.send("/xdata", [1, 2, 3])

``AsyncRawDataClient`` pipelines many requests on one connection;
``start_server`` and ``BackgroundRawServer`` start a server without
blocking. Servers take ``token=`` (default ``$DATASERVE_TOKEN``) and
``tls=TLSConfig(...)``, or all of where and how to listen as
``endpoint=Endpoint(...)``; clients take ``token=``, ``ca_file=``, ``cert=``
and ``verify=False``, or ``options=ClientOptions(...)``. The tinyproto,
tcpy and pyts facades live in ``rawproto.tinyproto``, ``rawproto.tcpy`` and
``rawproto.pyts``; the native framing's service, server and clients in
``rawproto.native``; the engine every framing runs on in ``rawproto.engine``,
the sans-IO protocols in ``rawproto.proto`` (see
``docs/architecture-rawproto.md``).

The exceptions (``NotHandled``, ``HandlerError``, ``ConnectError``...) are
the core's, the same classes ``dataserve`` exports, re-exported here; so are
``Limits``, ``Endpoint``, ``ClientOptions`` and ``TLSConfig``. Importing
rawproto never imports Starlette, uvicorn or httpx.
"""

from __future__ import annotations

# The distribution's version: dataserve and rawproto ship together.
__version__ = "0.2.0"

from dataserve.core.client_options import ClientOptions as ClientOptions
from dataserve.core.endpoint import Endpoint as Endpoint
from dataserve.core.errors import BadRequest as BadRequest
from dataserve.core.errors import ConnectError as ConnectError
from dataserve.core.errors import ConnectionClosed as ConnectionClosed
from dataserve.core.errors import DataServeError as DataServeError
from dataserve.core.errors import DecodeError as DecodeError
from dataserve.core.errors import GatewayTimeout as GatewayTimeout
from dataserve.core.errors import HandlerError as HandlerError
from dataserve.core.errors import NotHandled as NotHandled
from dataserve.core.errors import PayloadTooLarge as PayloadTooLarge
from dataserve.core.errors import RemoteProtocolError as RemoteProtocolError
from dataserve.core.errors import RequestTimeout as RequestTimeout
from dataserve.core.errors import ResponseError as ResponseError
from dataserve.core.errors import ServiceUnavailable as ServiceUnavailable
from dataserve.core.errors import TimeoutError as TimeoutError
from dataserve.core.errors import TransportError as TransportError
from dataserve.core.errors import Unauthorized as Unauthorized
from dataserve.core.errors import UnsupportedMediaTypeError as UnsupportedMediaTypeError
from dataserve.core.limits import Limits as Limits
from dataserve.core.security import TLSConfig as TLSConfig

from .engine import Connection as Connection
from .engine import RawServer as RawServer
from .engine import Service as Service
from .engine import Session as Session
from .engine import open_connection as open_connection
from .native import AsyncRawDataClient as AsyncRawDataClient
from .native import BackgroundRawServer as BackgroundRawServer
from .native import NativeService as NativeService
from .native import RawDataClient as RawDataClient
from .native import serve as serve
from .native import start_server as start_server

__all__ = [
    "AsyncRawDataClient",
    "BackgroundRawServer",
    "BadRequest",
    "ClientOptions",
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "DataServeError",
    "DecodeError",
    "Endpoint",
    "GatewayTimeout",
    "HandlerError",
    "Limits",
    "NativeService",
    "NotHandled",
    "PayloadTooLarge",
    "RawDataClient",
    "RawServer",
    "RemoteProtocolError",
    "RequestTimeout",
    "ResponseError",
    "Service",
    "ServiceUnavailable",
    "Session",
    "TLSConfig",
    "TimeoutError",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaTypeError",
    "__version__",
    "open_connection",
    "serve",
    "start_server",
]
