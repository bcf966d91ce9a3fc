"""HTTPDataClient and AsyncHTTPDataClient against a real server."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from dataserve import (
    AsyncHTTPDataClient,
    ConnectError,
    DecodeError,
    HandlerError,
    HTTPDataClient,
    NotHandled,
    PayloadTooLarge,
    TimeoutError,
    UnsupportedMediaTypeError,
    create_app,
)
from dataserve.core.limits import Limits
from dataserve.http.server import BackgroundServer

from .conftest import EchoHandler

PAYLOADS = ["text", "", [4, 5, 6], {"a": {"b": [1.5, None]}}, 7, b"\x00\x01", bytearray(b"ba")]


def client_for(server: BackgroundServer) -> HTTPDataClient:
    return HTTPDataClient(server.port, "http://127.0.0.1:")


@pytest.mark.parametrize("payload", PAYLOADS, ids=repr)
def test_sync_round_trip(echo_server: BackgroundServer, payload: Any) -> None:
    with client_for(echo_server) as client:
        expected = bytes(payload) if isinstance(payload, bytearray) else payload
        assert client.send("/echo", payload) == expected
        assert client.send("echo", payload) == expected  # resource without the slash


def test_async_round_trip(echo_server: BackgroundServer) -> None:
    async def main() -> list[Any]:
        async with AsyncHTTPDataClient(echo_server.port, "http://127.0.0.1:") as client:
            return list(await asyncio.gather(*(client.send("/echo", p) for p in PAYLOADS)))

    results = asyncio.run(main())
    assert results == [bytes(p) if isinstance(p, bytearray) else p for p in PAYLOADS]


def test_default_address_is_localhost(echo_server: BackgroundServer) -> None:
    with HTTPDataClient(echo_server.port) as client:
        assert client.url == f"http://localhost:{echo_server.port}"
        assert client.send("/echo", [1]) == [1]


def test_one_connection_pool_across_calls(echo_server: BackgroundServer) -> None:
    ports = set()

    def record(response: httpx.Response) -> None:
        stream = response.extensions["network_stream"]
        ports.add(stream.get_extra_info("client_addr")[1])

    with client_for(echo_server) as client:
        client._client.event_hooks["response"] = [record]
        for _ in range(20):
            client.send("/echo", "x")
    assert len(ports) == 1


@pytest.mark.parametrize(
    ("resource", "payload", "error", "status", "message"),
    [
        ("/nope", 1, NotHandled, 404, "resource '/nope' is not handled"),
        ("/raise", 1, HandlerError, 500, "the handler raised RuntimeError"),
    ],
)
def test_error_statuses_raise_typed_exceptions(
    echo_server: BackgroundServer,
    resource: str,
    payload: Any,
    error: type[Exception],
    status: int,
    message: str,
) -> None:
    with client_for(echo_server) as client, pytest.raises(error) as info:
        client.send(resource, payload)
    assert info.value.status == status  # type: ignore[attr-defined]
    assert message in str(info.value)

    async def main() -> None:
        async with AsyncHTTPDataClient(echo_server.port, "http://127.0.0.1:") as client:
            with pytest.raises(error, match=message):
                await client.send(resource, payload)

    asyncio.run(main())


def test_payload_too_large(serve: Any) -> None:
    server = serve(create_app(EchoHandler, limits=Limits(max_body_size=100)))
    with client_for(server) as client, pytest.raises(PayloadTooLarge, match="over the limit"):
        client.send("/echo", b"x" * 101)


def test_unsupported_media_type_from_a_custom_codec(echo_server: BackgroundServer) -> None:
    from dataserve.core.codec import Codec, CodecRegistry

    registry = CodecRegistry()
    registry.register(Codec("application/x-custom", 99, lambda v: b"c", lambda b, p: b, None))
    registry.register(
        Codec(
            "application/x-tuple",
            98,
            lambda v: b"t",
            lambda b, p: b,
            lambda v: isinstance(v, tuple),
        )
    )
    client = HTTPDataClient(echo_server.port, "http://127.0.0.1:", codecs=registry)
    with client, pytest.raises(UnsupportedMediaTypeError, match="application/x-tuple"):
        client.send("/echo", (1, 2))


def test_connection_refused_names_the_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        client = HTTPDataClient(port, "http://127.0.0.1:")
        with (
            client,
            pytest.raises(ConnectError, match=f"cannot connect to http://127.0.0.1:{port}/x"),
        ):
            client.send("/x")


def test_timeout(serve: Any) -> None:
    import threading

    release = threading.Event()

    def slow(resource: str, payload: Any) -> Any:
        release.wait(10)
        return 1

    server = serve(create_app(slow))
    client = HTTPDataClient(server.port, "http://127.0.0.1:", timeout=0.3)
    with client, pytest.raises(TimeoutError, match="no answer from"):
        client.send("/x")
    release.set()


def test_undecodable_reply(serve: Any) -> None:
    async def liar(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{not json"})

    server = serve(liar)
    with client_for(server) as client, pytest.raises(DecodeError, match="undecodable reply"):
        client.send("/x")
