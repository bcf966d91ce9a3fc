"""rawproto.native.service: the native framing's engine service, on a mock transport.

A client ``Exchange`` makes the bytes, a ``Connection`` of ``NativeService``
on a ``MockTransport`` takes them (as uvicorn's protocol tests feed a
protocol), and what the transport was given is read back by the exchange.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from dataserve.core.codec import default_registry
from dataserve.core.errors import HandlerError, NotHandled, Unauthorized
from dataserve.core.limits import Limits
from rawproto.engine.registry import Registry
from rawproto.native.exchange import Exchange
from rawproto.native.service import NativeService, NativeSession
from rawproto.proto.native import Error, Preface, Reply

from .mock_transport import MockTransport, connect

Loop = asyncio.AbstractEventLoop


def run(main: Any) -> None:
    """Run ``main(loop)`` on a plain loop: handlers on threads answer in real time."""

    async def outer() -> None:
        await main(asyncio.get_running_loop())

    asyncio.run(outer())


async def feed(conn: Any, data: bytes) -> None:
    """Hand ``data`` to the connection from a loop callback, as asyncio does (not a task)."""
    asyncio.get_running_loop().call_soon(conn.data_received, data)
    await asyncio.sleep(0)  # the callback, queued first, has run when this resumes


def handler(resource: str, payload: Any) -> Any:
    if resource == "/none":
        return None
    if resource == "/boom":
        raise ValueError("secret")
    return [resource, payload]


class Peer:
    """The client side: an Exchange, fed what the server wrote."""

    def __init__(self, t: MockTransport, token: str | None = None) -> None:
        self.t = t
        self.exchange = Exchange("server", default_registry, 1 << 20, token)
        self.opening = self.exchange.opening()  # made first: requests follow it
        self.read = 0

    def answers(self) -> list[Any]:
        new = self.t.sent()[self.read :]
        self.read += len(new)
        return [e for e in self.exchange.receive(new) if not isinstance(e, Preface)]


async def settle(t: MockTransport, done: Any) -> None:
    """Wait for the connection's writes until ``done()`` (handlers on threads answer
    through the loop)."""
    while not done():
        await t.next_write()


def test_a_request_is_answered_with_its_id() -> None:
    async def main(loop: Loop) -> None:
        service = NativeService(handler)
        conn, t = connect(service.session)
        assert isinstance(conn.session, NativeSession)
        peer = Peer(t)
        rid, frame = peer.exchange.request("/x", {"a": 1})
        await feed(conn, peer.opening + frame)
        got: list[Any] = []
        await settle(t, lambda: got.extend(peer.answers()) or got)
        (reply,) = got
        assert isinstance(reply, Reply) and reply.request_id == rid
        assert peer.exchange.outcome(reply) == ["/x", {"a": 1}]
        await service.aclose()

    run(main)


def test_failures_are_error_frames_by_the_outcome_policy() -> None:
    async def main(loop: Loop) -> None:
        service = NativeService(handler)
        conn, t = connect(service.session)
        peer = Peer(t)
        data = peer.opening
        for resource in ("/none", "/boom"):
            data += peer.exchange.request(resource, 1)[1]
        await feed(conn, data)
        got: list[Any] = []
        await settle(t, lambda: got.extend(peer.answers()) or len(got) == 2)
        by_id = {e.request_id: e for e in got}
        with pytest.raises(NotHandled):
            peer.exchange.outcome(by_id[1])
        with pytest.raises(HandlerError) as info:
            peer.exchange.outcome(by_id[2])
        assert "secret" not in str(info.value)
        await service.aclose()

    run(main)


def test_async_handlers_answer_in_the_same_turn() -> None:
    async def quick(resource: str, payload: Any) -> Any:
        return payload

    async def main(loop: Loop) -> None:
        service = NativeService(quick)
        conn, t = connect(service.session)
        peer = Peer(t)
        await feed(conn, peer.opening + peer.exchange.request("/q", 5)[1])
        (reply,) = peer.answers()  # no loop turn needed
        assert peer.exchange.outcome(reply) == 5
        await service.aclose()

    run(main)


def test_without_the_token_the_connection_is_refused() -> None:
    async def main(loop: Loop) -> None:
        service = NativeService(handler, token="s3cret")
        conn, t = connect(service.session)
        peer = Peer(t, token="wrong")
        await feed(conn, peer.opening + peer.exchange.request("/x", 1)[1])
        (error,) = peer.answers()
        assert isinstance(error, Error) and error.request_id == 0
        assert isinstance(peer.exchange.connection_error(error), Unauthorized)
        assert t.eof_written or t.closed
        await service.aclose()

    run(main)


def test_a_closing_connection_refuses_new_requests_with_503() -> None:
    async def main(loop: Loop) -> None:
        service = NativeService(handler)
        registry = Registry(Limits())
        conn, t = connect(service.session, registry=registry)
        registry.closing = True  # as RawServer.stop() marks it
        peer = Peer(t)
        await feed(conn, peer.opening + peer.exchange.request("/x", 1)[1])
        (error,) = peer.answers()
        assert isinstance(error, Error) and error.code == 503
        await service.aclose()

    run(main)


def test_abandoned_requests_are_answered_503_at_the_end_of_the_grace_period() -> None:
    release = threading.Event()

    def blocked(resource: str, payload: Any) -> Any:
        release.wait(10)
        return 1

    async def main(loop: Loop) -> None:
        service = NativeService(blocked)
        conn, t = connect(service.session)
        peer = Peer(t)
        await feed(conn, peer.opening + peer.exchange.request("/x", 1)[1])
        session = conn.session
        assert isinstance(session, NativeSession) and list(session.in_flight) == [1]
        session.abandoned()
        release.set()
        await asyncio.sleep(0)  # written outside a batch: flushed when the loop turns
        (error,) = peer.answers()
        assert isinstance(error, Error) and (error.request_id, error.code) == (1, 503)
        assert session.in_flight == {}
        await service.aclose()

    try:
        run(main)
    finally:
        release.set()


def test_the_service_needs_something_to_serve_and_records_metrics() -> None:
    with pytest.raises(TypeError, match="needs a handler, an exchange or a caller"):
        NativeService()

    seen: list[tuple[Any, ...]] = []

    class Metrics:
        def observe(self, *args: Any) -> None:
            seen.append(args)

    async def caller(resource: str, payload: Any) -> Any:
        return payload

    async def main(loop: Loop) -> None:
        service = NativeService(caller=caller, metrics=Metrics())
        conn, t = connect(service.session)
        peer = Peer(t)
        await feed(conn, peer.opening + peer.exchange.request("/m", b"abc")[1])
        assert len(peer.answers()) == 1
        await service.aclose()

    run(main)
    ((resource, status, _seconds, size_in, size_out),) = seen
    assert (resource, status, size_in) == ("/m", 200, 3) and size_out >= 3
