"""Fixtures for the callback API: registered servers on free ports, a recording callback."""

from __future__ import annotations

import contextlib
import errno
import queue
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dataserve.callback import httpserver_registercallback, httpserver_stopcallback

Register = Callable[..., tuple[int, int]]


def ok(message: str | bytes = "ok", **headers: str) -> dict[str, Any]:
    """A valid response dict."""
    return {"version": "1.1", "statuscode": 200, "headers": dict(headers), "message": message}


class Recorder:
    """A ``def`` callback that records each request dict, its body read whole."""

    def __init__(self, reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reply = reply or (lambda request: ok())

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        seen = dict(request)
        seen["body"] = request["datastream"].read()
        self.requests.put(seen)
        return self.reply(seen)

    def next(self) -> dict[str, Any]:
        return self.requests.get(timeout=10)


def register_on_free_port(cbfunc: Any, **kwargs: Any) -> tuple[int, int]:
    """Register ``cbfunc`` on a free loopback port: ``(httpdid, port)``.

    The seed's API takes ports 1..65535 only, so port 0 cannot be passed and
    read back: a free port is found and then registered, and if another
    process takes it in between, registering fails with EADDRINUSE and the
    next free port is tried.
    """
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            return httpserver_registercallback(("127.0.0.1", port), cbfunc, **kwargs), port
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError("no free port found in 20 attempts")


@pytest.fixture
def register() -> Iterator[Register]:
    """``register(cbfunc, **kw) -> (httpdid, port)``; stopped after the test."""
    ids: list[int] = []

    def start(cbfunc: Any, **kwargs: Any) -> tuple[int, int]:
        httpdid, port = register_on_free_port(cbfunc, **kwargs)
        ids.append(httpdid)
        return httpdid, port

    yield start
    for httpdid in ids:
        with contextlib.suppress(KeyError):  # the test stopped it itself
            httpserver_stopcallback(httpdid)
