"""Kept for ``from rawproto.client import ...``: the module is ``rawproto.native.client``."""

from __future__ import annotations

from .native.client import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from .native.client import AsyncRawDataClient as AsyncRawDataClient
from .native.client import RawDataClient as RawDataClient

__all__ = ["DEFAULT_TIMEOUT", "AsyncRawDataClient", "RawDataClient"]
