"""Kept for ``from rawproto.server import ...``: the module is ``rawproto.native.server``."""

from __future__ import annotations

from .native.server import BackgroundRawServer as BackgroundRawServer
from .native.server import serve as serve
from .native.server import start_server as start_server

__all__ = ["BackgroundRawServer", "serve", "start_server"]
