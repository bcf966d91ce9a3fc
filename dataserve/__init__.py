"""dataserve: serve a Python data handler over HTTP and raw TCP.

The seed-001 API (``HTTPDataHandler``, ``run_http_server``, ``HTTPDataClient``)
and the rest of the public API are exported lazily, so that importing the core
(or ``rawproto``) never imports Starlette, uvicorn or httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    "HTTPDataHandler": "dataserve.core.handler",
    "Router": "dataserve.core.routing",
    "Limits": "dataserve.core.limits",
    "Endpoint": "dataserve.core.endpoint",
    "ClientOptions": "dataserve.core.client_options",
    "TLSConfig": "dataserve.core.security",
    "Codec": "dataserve.core.codec",
    "CodecRegistry": "dataserve.core.codec",
    "default_registry": "dataserve.core.codec",
    "inline": "dataserve.core.dispatch",
    "run_http_server": "dataserve.serving",
    "BackgroundServer": "dataserve.http.server",
    "create_app": "dataserve.http.app",
    "DataServeApp": "dataserve.http.app",
    "HTTPDataClient": "dataserve.client",
    "AsyncHTTPDataClient": "dataserve.client",
    "OpsConfig": "dataserve.ops",
    "request_id": "dataserve.ops",
}
_ERRORS = [
    "DataServeError",
    "CodecError",
    "UnsupportedMediaType",
    "DecodeError",
    "EncodeError",
    "LimitExceeded",
    "StructureTooLarge",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "TransportError",
    "ConnectError",
    "TimeoutError",
    "ConnectionClosed",
    "ResponseError",
    "BadRequest",
    "Unauthorized",
    "NotHandled",
    "MethodNotAllowed",
    "RequestTimeout",
    "PayloadTooLarge",
    "UnsupportedMediaTypeError",
    "HandlerError",
    "ServiceUnavailable",
    "GatewayTimeout",
]
_EXPORTS.update(dict.fromkeys(_ERRORS, "dataserve.core.errors"))

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dataserve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .client import AsyncHTTPDataClient as AsyncHTTPDataClient
    from .client import HTTPDataClient as HTTPDataClient
    from .core.client_options import ClientOptions as ClientOptions
    from .core.codec import Codec as Codec
    from .core.codec import CodecRegistry as CodecRegistry
    from .core.codec import default_registry as default_registry
    from .core.dispatch import inline as inline
    from .core.endpoint import Endpoint as Endpoint
    from .core.errors import BadRequest as BadRequest
    from .core.errors import CodecError as CodecError
    from .core.errors import ConnectError as ConnectError
    from .core.errors import ConnectionClosed as ConnectionClosed
    from .core.errors import DataServeError as DataServeError
    from .core.errors import DecodeError as DecodeError
    from .core.errors import EncodeError as EncodeError
    from .core.errors import GatewayTimeout as GatewayTimeout
    from .core.errors import HandlerError as HandlerError
    from .core.errors import LimitExceeded as LimitExceeded
    from .core.errors import LocalProtocolError as LocalProtocolError
    from .core.errors import MethodNotAllowed as MethodNotAllowed
    from .core.errors import NotHandled as NotHandled
    from .core.errors import PayloadTooLarge as PayloadTooLarge
    from .core.errors import ProtocolError as ProtocolError
    from .core.errors import RemoteProtocolError as RemoteProtocolError
    from .core.errors import RequestTimeout as RequestTimeout
    from .core.errors import ResponseError as ResponseError
    from .core.errors import ServiceUnavailable as ServiceUnavailable
    from .core.errors import StructureTooLarge as StructureTooLarge
    from .core.errors import TimeoutError as TimeoutError
    from .core.errors import TransportError as TransportError
    from .core.errors import Unauthorized as Unauthorized
    from .core.errors import UnsupportedMediaType as UnsupportedMediaType
    from .core.errors import UnsupportedMediaTypeError as UnsupportedMediaTypeError
    from .core.handler import HTTPDataHandler as HTTPDataHandler
    from .core.limits import Limits as Limits
    from .core.routing import Router as Router
    from .core.security import TLSConfig as TLSConfig
    from .http.app import DataServeApp as DataServeApp
    from .http.app import create_app as create_app
    from .http.server import BackgroundServer as BackgroundServer
    from .ops import OpsConfig as OpsConfig
    from .ops import request_id as request_id
    from .serving import run_http_server as run_http_server
