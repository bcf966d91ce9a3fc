"""The transport-free core shared by dataserve (HTTP) and rawproto (TCP).

Imports neither Starlette nor any I/O framework: codec, routing, dispatch,
limits, errors and the data handler base class.
"""

from __future__ import annotations

from .budget import DecodeBudget as DecodeBudget
from .codec import Codec as Codec
from .codec import CodecRegistry as CodecRegistry
from .codec import default_registry as default_registry
from .dispatch import Dispatcher as Dispatcher
from .dispatch import HandlerPool as HandlerPool
from .dispatch import inline as inline
from .handler import HTTPDataHandler as HTTPDataHandler
from .handler import make_caller as make_caller
from .handler import resolve_handler as resolve_handler
from .limits import DEFAULT_LIMITS as DEFAULT_LIMITS
from .limits import Limits as Limits
from .routing import Router as Router

__all__ = [
    "DEFAULT_LIMITS",
    "Codec",
    "CodecRegistry",
    "DecodeBudget",
    "Dispatcher",
    "HTTPDataHandler",
    "HandlerPool",
    "Limits",
    "Router",
    "default_registry",
    "inline",
    "make_caller",
    "resolve_handler",
]
