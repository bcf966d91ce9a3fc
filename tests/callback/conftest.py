"""Fixtures for the callback API: registered servers on port 0 read back, a recording callback."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

from dataserve import callback
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


def register_on_port_0(cbfunc: Any, **kwargs: Any) -> tuple[int, int]:
    """Register ``cbfunc`` on loopback port 0 and read the port back: ``(httpdid, port)``.

    The seed's API takes ports 1..65535 only (``check_address``, tested on its
    own in ``test_messages.py``), so here, and only for this call, port 0 is
    let through to the server, which binds it; the port it got is read back
    from the running server. No port is picked first and released (another
    process could take it in between).
    """
    real = callback.check_address

    def also_port_0(addresstuple: object) -> tuple[str, int]:
        if isinstance(addresstuple, tuple) and len(addresstuple) == 2 and addresstuple[1] == 0:
            host, _ = real((addresstuple[0], 1))
            return host, 0
        return real(addresstuple)

    with mock.patch.object(callback, "check_address", also_port_0):
        httpdid = httpserver_registercallback(("127.0.0.1", 0), cbfunc, **kwargs)
    port = callback._servers[httpdid].port
    assert port > 0
    return httpdid, port


@pytest.fixture
def register() -> Iterator[Register]:
    """``register(cbfunc, **kw) -> (httpdid, port)``; stopped after the test."""
    ids: list[int] = []

    def start(cbfunc: Any, **kwargs: Any) -> tuple[int, int]:
        httpdid, port = register_on_port_0(cbfunc, **kwargs)
        ids.append(httpdid)
        return httpdid, port

    yield start
    for httpdid in ids:
        with contextlib.suppress(KeyError):  # the test stopped it itself
            httpserver_stopcallback(httpdid)
