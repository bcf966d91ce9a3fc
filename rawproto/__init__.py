"""rawproto: raw TCP framings on asyncio, sharing dataserve's core."""

from __future__ import annotations

__all__: list[str] = []
