"""Handlers the hardening tests' subprocess servers import by name."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from dataserve import HTTPDataHandler


class Slow(HTTPDataHandler):
    """``/slow`` holds the request for a while, then answers; ``/inflight``
    counts those; ``/rss`` and ``/fds`` report the process's resident memory
    and open descriptors."""

    inflight = 0

    async def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/slow":
            Slow.inflight += 1
            await asyncio.sleep(float(payload))  # sleep-ok: the request is in flight
            return "finished"
        if resource == "/inflight":
            return Slow.inflight
        if resource == "/raise":
            raise ValueError("storm")
        if resource == "/rss":
            with open(f"/proc/{os.getpid()}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        if resource == "/fds":
            return len(os.listdir(f"/proc/{os.getpid()}/fd"))
        return payload
