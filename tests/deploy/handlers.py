"""Handlers for the deployment tests (importable as ``tests.deploy.handlers:NAME``)."""

from __future__ import annotations

import os
import time
from typing import Any

from dataserve import HTTPDataHandler, Router, inline, request_id


class Probe(HTTPDataHandler):
    """A ``def`` handler (it runs on the handler thread) with a resource per check."""

    calls: list[str] = []

    def handle_request(self, resource: str, payload: Any) -> Any:
        Probe.calls.append(resource)
        if resource == "/rid":
            return request_id()
        if resource == "/pid":
            return os.getpid()
        if resource == "/echo":
            return payload
        if resource == "/slow":
            if payload.get("fifo"):  # tell the test the request is in the handler
                with open(payload["fifo"], "w") as fifo:
                    fifo.write("started")
            time.sleep(payload["seconds"])  # sleep-ok: a slow handler is the scenario
            return "done"
        if resource == "/boom":
            raise RuntimeError("boom")
        if resource.startswith("/any/") or resource.startswith("/_dataserve"):
            return "ok"
        return None


async def async_rid(resource: str, payload: Any) -> Any:
    return request_id()


@inline
def inline_rid(resource: str, payload: Any) -> Any:
    return request_id()


router: Router[Any] = Router()


@router.route("/rid")
def routed_rid(payload: Any) -> Any:
    return request_id()


class NoHandleRequest:
    """A class, callable, but not a handler."""


def one_argument(resource: str) -> str:
    return resource
