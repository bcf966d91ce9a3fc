"""Handlers that subprocess servers import by name (``tests.http.handlers:Echo``)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from dataserve import HTTPDataHandler


class Echo(HTTPDataHandler):
    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/none":
            return None  # not handled: 404
        if resource == "/pid":
            return os.getpid()
        if resource == "/peak-rss":
            with open(f"/proc/{os.getpid()}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        return payload


not_a_handler = [1, 2, 3]


class Queued(HTTPDataHandler):
    """A ``def`` handler for the shutdown and hung-thread tests: ``/slow`` works
    for a while, ``/hang`` never returns, anything else is echoed."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/pid":
            return os.getpid()
        if resource == "/slow":
            time.sleep(float(payload or 0.3))  # sleep-ok: the handler's work
            return "done"
        if resource == "/hang":
            threading.Event().wait()  # never set: a handler that hangs
        return payload


class Sizes(HTTPDataHandler):
    """Answers how large the decoded payload is (``def`` on ``/def``, else ``async def``
    through ``AsyncSizes``): the body is decoded, the answer stays small."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        return len(payload)


class AsyncSizes(HTTPDataHandler):
    async def handle_request(self, resource: str, payload: Any) -> Any:
        return len(payload)


class Keeper(HTTPDataHandler):
    """Keeps the body PUT to ``/keep``; ``/kept`` answers it; anything else is echoed."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: Any = None

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/pid":
            return os.getpid()
        if resource == "/keep":
            self.kept = payload
            return len(payload)
        if resource == "/kept":
            return self.kept
        return payload
