"""Handlers for the memory tests' server processes (``python -m rawproto serve native``).

``Echo`` (``def``) and ``AsyncEcho`` send the payload back; ``/pid`` answers
the server's process id, so a test can read its memory from ``/proc``;
``/big`` answers a fresh 4 MB ``bytes`` each call (what a peer that never
reads makes the server hold); ``/summary`` answers the payload's type and
length, never the payload, so the server's memory is the frame's and the
decoded value's only.
"""

from __future__ import annotations

import os
from typing import Any

from dataserve import HTTPDataHandler

BIG = 4_000_000


def _answer(resource: str, payload: Any) -> Any:
    if resource == "/pid":
        return os.getpid()
    if resource == "/big":
        return bytes(BIG)  # a new object each time, as an encoded answer would be
    if resource == "/summary":
        return {"type": type(payload).__name__, "len": len(payload)}
    if resource == "/echo":
        return payload
    return None


class Echo(HTTPDataHandler):
    def handle_request(self, resource: str, payload: Any) -> Any:
        return _answer(resource, payload)


class AsyncEcho(HTTPDataHandler):
    async def handle_request(self, resource: str, payload: Any) -> Any:
        return _answer(resource, payload)
