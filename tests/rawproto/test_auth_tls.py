"""Tokens and TLS on the native framing, over real sockets (certificates by trustme)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from dataserve.core.security import TOKEN_ENV
from rawproto import (
    AsyncRawDataClient,
    ConnectError,
    ConnectionClosed,
    PayloadTooLarge,
    RawDataClient,
    TLSConfig,
    Unauthorized,
)
from rawproto.proto.native import HEADER, KIND_AUTH, KIND_REQUEST, Auth, Error

from .conftest import FAST, Wire, connections, make_router, wait_closed

TOKEN = "s3cret"


def echo(resource: str, payload: Any) -> Any:
    return payload


def test_a_token_server_serves_clients_that_present_it(raw_server: Any) -> None:
    server = raw_server(echo, token=TOKEN)
    with RawDataClient(server.port, token=TOKEN) as client:
        assert client.send("/x", [1, 2]) == [1, 2]
        assert client.send("/y", "again") == "again"
    for token, why in (("", "requires a token"), ("guess", "wrong token")):
        with (
            RawDataClient(server.port, token=token) as client,
            pytest.raises(Unauthorized, match=why),
        ):
            client.send("/x", 1)
    with RawDataClient(server.port, token=TOKEN) as client:  # still serving
        assert client.send("/x", 3) == 3


def test_the_async_client_sends_its_token_before_pipelining(raw_server: Any) -> None:
    server = raw_server(echo, token=TOKEN)

    async def main() -> None:
        async with AsyncRawDataClient(server.port, token=TOKEN) as client:
            answers = await asyncio.gather(*(client.send("/n", i) for i in range(50)))
            assert answers == list(range(50))
        async with AsyncRawDataClient(server.port, token="") as client:
            with pytest.raises(Unauthorized):
                await client.send("/n", 1)

    asyncio.run(main())


def test_the_token_comes_from_the_environment(raw_server: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = raw_server(echo)  # token=None: $DATASERVE_TOKEN
    with RawDataClient(server.port) as client:
        assert client.send("/x", "env") == "env"
    with RawDataClient(server.port, token="") as client, pytest.raises(Unauthorized):
        client.send("/x", "no token, explicitly")
    open_server = raw_server(echo, token="")  # "": no token, even with the variable set
    with RawDataClient(open_server.port) as client:  # sends one anyway: ignored
        assert client.send("/x", "open") == "open"


def test_t26_a_large_frame_before_the_token_is_refused_unread(raw_server: Any) -> None:
    server = raw_server(echo, token=TOKEN)
    # A 1 GiB request before the token: 401 from its header; nothing is read.
    wire = Wire(server.port)
    wire.send(HEADER.pack(1 << 30, KIND_REQUEST, 0, 2, 1) + b"/x" + b"a" * 1000)
    assert wire.until_closed() == [
        Error(0, 401, "this server requires a token: send it in an AUTH frame first")
    ]
    # A 1 MiB AUTH frame: over the 16 KiB cap for unauthenticated peers.
    wire = Wire(server.port)
    wire.send(HEADER.pack(1 << 20, KIND_AUTH, 0, 0, 0) + b"t" * 1000)
    (error,) = wire.until_closed()
    assert isinstance(error, Error) and error.code == 413
    assert "16384 bytes before authentication" in error.message
    with RawDataClient(server.port, token=TOKEN) as client:
        assert client.send("/x", "served") == "served"


def test_t27_a_wrong_token_is_answered_then_closed(raw_server: Any) -> None:
    server = raw_server(echo, token=TOKEN)
    wire = Wire(server.port)
    wire.send(wire.proto.send(Auth(b"guess")))
    wire.request(1, "/x", "after a wrong token")
    assert wire.until_closed() == [Error(0, 401, "wrong token")]


def test_a_client_that_never_sends_its_token_is_closed_at_the_handshake_deadline(
    raw_server: Any,
) -> None:
    server = raw_server(echo, token=TOKEN, limits=FAST)
    wire = Wire(server.port)  # the preface, then nothing
    (error,) = wire.until_closed()
    assert isinstance(error, Error) and error.code == 408
    assert "no handshake" in error.message


# --- TLS --------------------------------------------------------------------------------


def test_tls_with_a_private_ca(raw_server: Any, pki: dict[str, str]) -> None:
    server = raw_server(echo, tls=TLSConfig(pki["cert"], pki["key"]))
    with RawDataClient(server.port, ca_file=pki["ca"]) as client:
        assert client.send("/x", b"\x00" * 100_000) == b"\x00" * 100_000
        assert client.send("/y", {"a": 1}) == {"a": 1}
    with (
        RawDataClient(server.port, tls=True) as client,
        pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.send("/x", 1)  # the system's CAs do not know ours
    with RawDataClient(server.port, verify=False) as client:  # said explicitly
        assert client.send("/x", "unverified") == "unverified"
    with (
        RawDataClient(server.port) as client,
        pytest.raises(ConnectionClosed),  # "does it serve TLS?", or a reset
    ):
        client.send("/x", "plain TCP to a TLS port")


def test_tls_and_a_token_on_the_pipelining_client(raw_server: Any, pki: dict[str, str]) -> None:
    router, _ = make_router()
    server = raw_server(router, tls=TLSConfig(pki["cert"], pki["key"]), token=TOKEN)

    async def main() -> None:
        async with AsyncRawDataClient(server.port, token=TOKEN, ca_file=pki["ca"]) as client:
            answers = await asyncio.gather(*(client.send("/echo", i) for i in range(100)))
            assert answers == list(range(100))
            assert await client.send("/items/7", None) == {"name": "7", "payload": None}
        async with AsyncRawDataClient(server.port, token="x", ca_file=pki["ca"]) as client:
            with pytest.raises(Unauthorized):
                await client.send("/echo", 1)

    asyncio.run(main())


def test_client_certificates_when_the_server_requires_them(
    raw_server: Any, pki: dict[str, str]
) -> None:
    tls = TLSConfig(pki["cert"], pki["key"], client_ca=pki["ca"])
    server = raw_server(echo, tls=tls)
    cert = (pki["client_cert"], pki["client_key"])
    with RawDataClient(server.port, ca_file=pki["ca"], cert=cert) as client:
        assert client.send("/x", "with a certificate") == "with a certificate"
    with (
        RawDataClient(server.port, ca_file=pki["ca"]) as client,
        pytest.raises((ConnectError, ConnectionClosed)),
    ):
        client.send("/x", "without one")

    async def main() -> None:
        async with AsyncRawDataClient(server.port, ca_file=pki["ca"], cert=cert) as client:
            assert await client.send("/x", "async") == "async"

    asyncio.run(main())


def test_a_silent_tls_client_is_closed_at_the_handshake_deadline(
    raw_server: Any, pki: dict[str, str]
) -> None:
    server = raw_server(echo, tls=TLSConfig(pki["cert"], pki["key"]), limits=FAST)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with sock:
        assert sock.recv(1) == b""  # no ClientHello: closed after handshake_timeout
    assert connections(server) == []


def test_frame_limits_hold_inside_tls(raw_server: Any, pki: dict[str, str]) -> None:
    limits = FAST.replace(max_frame_size=1000, frame_timeout=10, idle_timeout=10)
    server = raw_server(echo, tls=TLSConfig(pki["cert"], pki["key"]), limits=limits)
    with RawDataClient(server.port, ca_file=pki["ca"]) as client:
        with pytest.raises(PayloadTooLarge):
            client.send("/x", b"x" * 5000)
        assert client.send("/x", b"small") == b"small"  # a fresh connection
    for conn in connections(server):
        wait_closed(conn)
