"""Our servers' handlers: seed 001's handler as written, and its async twin."""

from __future__ import annotations

from typing import Any

from dataserve import HTTPDataHandler

xdata = [1, 2, 3]


class SeedHandler(HTTPDataHandler):
    """Seed 001's example, word for word (a ``def`` handler: it runs on the handler thread)."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/xdata":
            global xdata
            return xdata + payload
        elif resource == "/ydata":
            return 2
        return None


class AsyncSeedHandler(HTTPDataHandler):
    """The same handler as ``async def``: it runs on the event loop."""

    async def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/xdata":
            return xdata + payload
        elif resource == "/ydata":
            return 2
        return None


class EchoHandler(HTTPDataHandler):
    """Sends the payload back (the large-payload scenario), as a seed-style ``def``."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/echo":
            return payload
        return None


class AsyncEchoHandler(HTTPDataHandler):
    """Sends the payload back, as ``async def`` (the raw round-trip scenarios)."""

    async def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/echo":
            return payload
        return None
