"""Fixtures for rawproto: real servers on 127.0.0.1:0 and a raw-socket peer."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dataserve.core.codec import default_registry
from dataserve.core.limits import Limits
from dataserve.core.routing import Router
from rawproto import BackgroundRawServer
from rawproto.engine import Connection
from rawproto.engine.loop import LoopThread
from rawproto.proto.base import ConnectionClosed, Event, FrameError, Role
from rawproto.proto.native import NativeConnection, Preface, Request

#: Short deadlines for tests of the deadlines.
FAST = Limits(handshake_timeout=0.3, frame_timeout=0.5, idle_timeout=0.5, shutdown_timeout=10)


class Gate:
    """A handler-side gate the test opens: no sleeping to synchronise."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def wait(self, timeout: float = 30) -> None:
        self.entered.set()
        self.opened.wait(timeout)


def make_router() -> tuple[Router[Any], dict[str, Any]]:
    """Endpoints covering every outcome; ``state`` lets tests look inside."""
    state: dict[str, Any] = {"calls": 0, "gate": Gate(), "release": None}
    router: Router[Any] = Router()

    @router.route("/echo")
    def echo(payload: Any) -> Any:
        state["calls"] += 1
        return payload

    @router.route("/none")
    def none(payload: Any) -> Any:
        return None

    @router.route("/boom")
    def boom(payload: Any) -> Any:
        raise ValueError("boom")

    @router.route("/unencodable")
    def unencodable(payload: Any) -> Any:
        return object()

    @router.route("/big")
    def big(payload: Any) -> Any:
        state["calls"] += 1
        return bytes(payload)

    @router.route("/block")
    def block(payload: Any) -> Any:  # a def handler that blocks its thread
        state["gate"].wait()
        return "unblocked"

    @router.route("/ping")
    async def ping(payload: Any) -> Any:  # async: runs on the loop meanwhile
        return "pong"

    @router.route("/wait")
    async def wait(payload: Any) -> Any:
        if state["release"] is None:
            state["release"] = asyncio.Event()
        await state["release"].wait()
        return "waited"

    @router.route("/release")
    async def release(payload: Any) -> Any:
        if state["release"] is None:
            state["release"] = asyncio.Event()
        state["release"].set()
        return "released"

    @router.route("/items/{name}")
    def item(payload: Any, name: str) -> Any:
        return {"name": name, "payload": payload}

    return router, state


@pytest.fixture
def router() -> Iterator[tuple[Router[Any], dict[str, Any]]]:
    routes, state = make_router()
    yield routes, state
    state["gate"].opened.set()  # never leave a handler blocked


@pytest.fixture
def raw_server() -> Iterator[Any]:
    """``raw_server(handler, **kwargs) -> BackgroundRawServer``, stopped after the test."""
    started: list[BackgroundRawServer] = []

    def start(handler: Any, **kwargs: Any) -> BackgroundRawServer:
        server = BackgroundRawServer(handler, **kwargs).start()
        started.append(server)
        return server

    yield start
    _close_all_wires()  # first: a server lingers on connections whose peer stays
    for server in started:
        server.stop(timeout=10)


def on_loop(coro: Any, timeout: float = 30) -> Any:
    return LoopThread.shared().run(coro, timeout)


def connections(server: BackgroundRawServer) -> list[Connection]:
    assert server.server is not None and server.server._registry is not None
    return list(server.server._registry.connections)


def wait_closed(conn: Connection, timeout: float = 10) -> None:
    """Block until the server side of ``conn`` has closed."""

    async def wait() -> None:
        await asyncio.wait_for(asyncio.shield(conn.closed_future), timeout)

    on_loop(wait(), timeout + 5)


def finish(server: Any) -> tuple[int, str]:
    """Stop a ``ServerProcess``: its exit status and all its output; its files closed."""
    status = server.stop()
    server.line(1_000_000)  # until EOF: the reader thread has everything
    output = "".join(server.lines)
    assert server.proc.stdout is not None
    server.proc.stdout.close()
    server.stderr.close()
    return status, output


_open_wires: list[Wire] = []


def _close_all_wires() -> None:
    while _open_wires:
        _open_wires.pop().close()


@pytest.fixture(autouse=True)
def _close_wires() -> Iterator[None]:
    yield
    _close_all_wires()


class Wire:
    """A raw socket peer speaking the native framing by hand (via the sans-IO client)."""

    def __init__(self, port: int, *, preface: bool = True, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        _open_wires.append(self)
        self.proto = NativeConnection(Role.CLIENT)
        self.pending: list[Event] = []
        self.closed = False
        if preface:
            self.sock.sendall(self.proto.initiate())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, request_id: int, resource: str, payload: Any = None) -> None:
        tag, body = default_registry.encode_tag(payload)
        self.send(self.frame(request_id, resource, tag, body))

    def frame(self, request_id: int, resource: str, tag: int = 0, body: bytes = b"") -> bytes:
        if not self.proto._preface_sent:
            self.proto.initiate()
        return self.proto.send(Request(request_id, resource, tag, body))

    def _read(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        self.proto.receive_data(data or None)
        try:
            events = self.proto.events()
        except FrameError:
            events = [ConnectionClosed()]
        for event in events:
            if isinstance(event, ConnectionClosed):
                self.closed = True
            elif not isinstance(event, Preface):
                self.pending.append(event)
        if not data:
            self.closed = True

    def events(self, n: int = 1) -> list[Event]:
        """The next ``n`` frames from the server (the preface is skipped)."""
        while len(self.pending) < n and not self.closed:
            self._read()
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def until_closed(self) -> list[Event]:
        """Every frame until the server closes the connection."""
        while not self.closed:
            self._read()
        out, self.pending = self.pending, []
        return out

    def close(self) -> None:
        self.sock.close()
