"""Serving a handler over the native framing, and the blocking and asyncio clients."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from dataserve import (
    BadRequest,
    ConnectError,
    ConnectionClosed,
    GatewayTimeout,
    HandlerError,
    HTTPDataClient,
    HTTPDataHandler,
    NotHandled,
    PayloadTooLarge,
    ServiceUnavailable,
    TimeoutError,
    UnsupportedMediaTypeError,
    create_app,
)
from dataserve.core.limits import Limits
from dataserve.core.routing import Router
from dataserve.http.server import BackgroundServer
from rawproto import AsyncRawDataClient, RawDataClient
from rawproto.proto.native import Error, Reply
from tests.tcpy_pyts.helpers import refused_port

from .conftest import Wire, connections, on_loop, wait_closed

PAYLOADS: list[Any] = [
    "text",
    "",
    [4, 5, 6],
    {"a": {"b": [1.5, None]}},
    7,
    b"\x00\x01",
    b"",
    "é" * 1000,
]


class SeedHandler(HTTPDataHandler):
    """Seed 001's example handler: the same class serves HTTP and raw TCP."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/xdata":
            return [2 * x for x in payload]
        if resource == "/echo":
            return payload
        if resource == "/boom":
            raise RuntimeError("boom")
        return None


class AsyncHandler(HTTPDataHandler):
    async def handle_request(self, resource: str, payload: Any) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)
        return {"resource": resource, "payload": payload}


def test_the_seed_handler_served_over_tcp(raw_server: Any) -> None:
    server = raw_server(SeedHandler)
    with RawDataClient(server.port) as client:
        assert client.send("/xdata", [4, 5, 6]) == [8, 10, 12]
        for payload in PAYLOADS:
            assert client.send("/echo", payload) == payload
        assert client.send("echo", bytearray(b"ba")) == b"ba"  # resources are paths
        with pytest.raises(NotHandled, match="resource '/nope' is not handled"):
            client.send("/nope", 1)
        with pytest.raises(HandlerError, match="raised RuntimeError for /boom"):
            client.send("/boom")
        assert client.send("/xdata", [1]) == [2]  # the connection goes on


def test_an_async_handler_runs_on_the_loop(raw_server: Any) -> None:
    server = raw_server(AsyncHandler)
    with RawDataClient(server.port) as client:
        assert client.send("/r", {"x": 1}) == {"resource": "/r", "payload": {"x": 1}}


def test_routers_with_parameters(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    with RawDataClient(server.port) as client:
        assert client.send("/items/book", [1]) == {"name": "book", "payload": [1]}


def test_numpy_arrays_travel_without_pickle(raw_server: Any) -> None:
    np = pytest.importorskip("numpy")
    server = raw_server(SeedHandler)
    with RawDataClient(server.port) as client:
        array = np.arange(12, dtype=np.float32).reshape(3, 4)
        got = client.send("/echo", array)
        assert got.dtype == np.float32 and (got == array).all()


def outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except Exception as exc:
        return (type(exc).__name__, getattr(exc, "status", None))


def test_the_same_exceptions_as_the_http_client(raw_server: Any, router: Any) -> None:
    handler = router[0]
    raw = raw_server(handler)
    http = BackgroundServer(create_app(handler)).start()
    try:
        calls = [
            ("/echo", [1, 2]),
            ("/none", 1),
            ("/boom", None),
            ("/unencodable", None),
            ("/items/x", "y"),
            ("/nowhere", "z"),
        ]
        with RawDataClient(raw.port) as rc, HTTPDataClient(http.port, "http://127.0.0.1:") as hc:
            for resource, payload in calls:
                expected = outcome(lambda r=resource, p=payload: hc.send(r, p))
                assert outcome(lambda r=resource, p=payload: rc.send(r, p)) == expected, resource
    finally:
        http.stop()


def test_bad_payloads_get_the_codec_status(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    wire.send(wire.frame(1, "/echo", 3, b"{not json"))
    wire.send(wire.frame(2, "/echo", 99, b"x"))
    wire.send(wire.frame(3, "/echo", 1, b"\xff\xfe"))
    wire.request(4, "/echo", "still here")
    e1, e2, e3, reply = wire.events(4)
    assert (
        isinstance(e1, Error)
        and (e1.request_id, e1.code) == (1, 400)
        and "malformed JSON" in e1.message
    )
    assert (
        isinstance(e2, Error)
        and (e2.request_id, e2.code) == (2, 415)
        and "unknown codec tag 99" in e2.message
    )
    assert (
        isinstance(e3, Error)
        and (e3.request_id, e3.code) == (3, 400)
        and "not valid utf-8" in e3.message
    )
    assert reply == Reply(4, 1, b"still here")
    assert router[1]["calls"] == 1  # nothing undecodable reached the handler


def test_client_raises_bad_request_and_unsupported_media_type(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    with RawDataClient(server.port) as client:
        sock, exchange = client._link.open()
        for tag, body, error in ((3, b"[1,", BadRequest), (77, b"", UnsupportedMediaTypeError)):
            exchange._last_id += 1
            from rawproto.native.call import Call
            from rawproto.proto.native import Request

            sock.sendall(exchange.proto.send(Request(exchange._last_id, "/echo", tag, body)))
            call = Call(client._link, sock, exchange, exchange._last_id, None)
            answer = None
            while answer is None:
                answer = call.early(sock.recv(65536))
            with pytest.raises(error):
                exchange.outcome(answer)


def test_replies_come_out_of_order_and_carry_their_id(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    wire.request(1, "/wait")
    wire.request(2, "/release")
    assert wire.events(2) == [Reply(2, 1, b"released"), Reply(1, 1, b"waited")]


def test_a_blocking_def_handler_does_not_stall_async_ones(raw_server: Any, router: Any) -> None:
    routes, state = router
    server = raw_server(routes)
    wire = Wire(server.port)
    wire.request(1, "/block")
    assert state["gate"].entered.wait(10)
    with RawDataClient(server.port) as other:
        assert other.send("/ping") == "pong"  # another connection
    wire.request(2, "/ping")
    assert wire.events(1) == [Reply(2, 1, b"pong")]  # the same connection
    state["gate"].opened.set()
    assert wire.events(1) == [Reply(1, 1, b"unblocked")]


def test_a_frame_over_the_limit_is_413_and_the_client_recovers(
    raw_server: Any, router: Any
) -> None:
    server = raw_server(router[0], limits=Limits(max_frame_size=64 * 1024))
    with RawDataClient(server.port) as client:
        with pytest.raises(PayloadTooLarge, match="over the limit of 65536 bytes"):
            client.send("/echo", bytes(3 * 1024 * 1024))
        assert client.send("/echo", "small") == "small"
    assert router[1]["calls"] == 1


def test_a_large_payload_both_ways(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB
    with RawDataClient(server.port) as client:
        assert client.send("/echo", data) == data


def test_a_handler_past_its_timeout_gets_504(raw_server: Any, router: Any) -> None:
    routes, state = router
    server = raw_server(routes, limits=Limits(handler_timeout=0.2, handler_threads=2))
    with RawDataClient(server.port) as client:
        with pytest.raises(GatewayTimeout, match="did not answer within 0.2 s"):
            client.send("/block")  # def: its thread runs on
        with pytest.raises(GatewayTimeout):
            client.send("/wait")  # async: cancelled
        assert client.send("/echo", "on") == "on"
    state["gate"].opened.set()


def test_connect_error_names_the_address() -> None:
    with refused_port() as port:
        with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
            RawDataClient(port).send("/x")

        async def main() -> None:
            with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
                await AsyncRawDataClient(port).send("/x")

        asyncio.run(main())


def test_timeout_while_the_handler_runs(raw_server: Any, router: Any) -> None:
    routes, state = router
    server = raw_server(routes, handler_threads=2)
    with RawDataClient(server.port, timeout=0.3) as client:
        with pytest.raises(TimeoutError, match="within 0.3 s"):
            client.send("/block")
        state["gate"].opened.set()
        assert client.send("/echo", 1) == 1  # a fresh connection


def test_the_blocking_client_reconnects_after_an_idle_close(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=Limits(idle_timeout=0.3))
    with RawDataClient(server.port) as client:
        assert client.send("/echo", 1) == 1
        (conn,) = connections(server)
        wait_closed(conn)  # the server closed it (ERROR 408, then FIN)
        assert client.send("/echo", 2) == 2


def test_the_blocking_client_after_a_server_restart(raw_server: Any, router: Any) -> None:
    first = raw_server(router[0])
    client = RawDataClient(first.port)
    assert client.send("/echo", 1) == 1
    first.stop()
    with pytest.raises(ConnectError):
        client.send("/echo", 2)
    second = raw_server(router[0], port=first.port)
    assert client.send("/echo", 3) == 3
    client.close()
    second.stop()


def test_a_request_during_shutdown_gets_503_and_in_flight_ones_finish(
    raw_server: Any, router: Any
) -> None:
    routes, state = router
    server = raw_server(routes, handler_threads=2)
    wire = Wire(server.port)
    wire.request(1, "/block")
    assert state["gate"].entered.wait(10)
    (conn,) = connections(server)
    # Start the graceful stop on the loop; one more loop round-trip later it
    # has begun (tasks run in the order they were scheduled).
    stopping = asyncio.run_coroutine_threadsafe(server.server.stop(), conn.loop)
    on_loop(asyncio.sleep(0))
    assert conn.closing
    wire.request(2, "/echo", "late")
    (refused,) = wire.events(1)
    assert isinstance(refused, Error) and (refused.request_id, refused.code) == (2, 503)
    assert not stopping.done()  # /block is still in flight
    state["gate"].opened.set()
    assert wire.until_closed() == [Reply(1, 1, b"unblocked")]
    stopping.result(10)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_the_async_client_pipelines_on_one_connection(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])

    async def main() -> None:
        async with AsyncRawDataClient(server.port) as client:
            results = await asyncio.gather(*(client.send("/echo", i) for i in range(2000)))
            assert results == list(range(2000))
            assert len(connections(server)) == 1
            waited = asyncio.ensure_future(client.send("/wait"))
            assert await client.send("/release") == "released"  # answered first
            assert await waited == "waited"

    asyncio.run(main())


def test_the_async_client_raises_what_the_blocking_one_raises(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=Limits(max_frame_size=4096))
    calls = [
        ("/echo", [1]),
        ("/none", 1),
        ("/boom", None),
        ("/unencodable", None),
        ("/echo", bytes(10_000)),
    ]
    with RawDataClient(server.port) as client:
        expected = [outcome(lambda r=r, p=p: client.send(r, p)) for r, p in calls]

    async def main() -> list[Any]:
        got = []
        async with AsyncRawDataClient(server.port) as client:
            for resource, payload in calls:
                try:
                    got.append(("ok", await client.send(resource, payload)))
                except Exception as exc:
                    got.append((type(exc).__name__, getattr(exc, "status", None)))
        return got

    assert asyncio.run(main()) == expected
    assert ("PayloadTooLarge", 413) in expected and ("NotHandled", 404) in expected


def test_the_async_client_times_out_and_fails_pending_on_close(
    raw_server: Any, router: Any
) -> None:
    routes, state = router
    server = raw_server(routes, handler_threads=2)

    async def main() -> None:
        async with AsyncRawDataClient(server.port, timeout=0.2) as client:
            with pytest.raises(TimeoutError, match="within 0.2 s"):
                await client.send("/block")
        state["gate"].opened.set()
        async with AsyncRawDataClient(server.port) as client:
            pending = asyncio.ensure_future(client.send("/wait"))
            await client.send("/ping")
            assert client._session is not None
            mine = client._session.conn.sockname
            (conn,) = [c for c in connections(server) if c.peername == mine]
            conn.loop.call_soon_threadsafe(conn.abort)
            with pytest.raises(ConnectionClosed):
                await pending
            assert await client.send("/ping") == "pong"  # reconnected

    asyncio.run(main())


def test_over_the_connection_limit_clients_get_503(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=Limits(max_connections=1))
    with RawDataClient(server.port) as first:
        assert first.send("/echo", 1) == 1
        with (
            RawDataClient(server.port) as second,
            pytest.raises(ServiceUnavailable, match="limit of 1 connections"),
        ):
            second.send("/echo", 2)
        assert first.send("/echo", 3) == 3


def test_not_a_native_server_is_a_clear_error(raw_server: Any) -> None:
    http = BackgroundServer(create_app(SeedHandler)).start()
    try:
        with (
            RawDataClient(http.port) as client,
            pytest.raises(ConnectionClosed, match="broke the native protocol: not the rawproto"),
        ):
            client.send("/x")
    finally:
        http.stop()


def test_a_router_is_served_like_a_handler(raw_server: Any) -> None:
    routes: Router[Any] = Router({"/a": lambda payload: "A"})
    with RawDataClient(raw_server(routes).port) as client:
        assert client.send("/a") == "A"
        with pytest.raises(NotHandled):
            client.send("/b")
