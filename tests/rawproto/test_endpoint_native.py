"""``rawproto.serve(handler, endpoint=Endpoint(...))`` over real sockets, called
by raw clients built from ``ClientOptions``: TCP with TLS and a token, and a Unix socket."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rawproto import (
    AsyncRawDataClient,
    BackgroundRawServer,
    ClientOptions,
    Endpoint,
    NotHandled,
    RawDataClient,
    TimeoutError,
    Unauthorized,
    start_server,
)
from tests.conftest import ServerProcess

SERVER = textwrap.dedent(
    """
    import sys, time
    import rawproto
    from rawproto import Endpoint, TLSConfig

    def handler(resource, payload):
        if resource == "/slow":
            time.sleep(3)  # sleep-ok: a slow handler, for the client's read timeout
        return payload

    where = sys.argv[1]
    if where == "tcp":
        endpoint = Endpoint(port=0, tls=TLSConfig(sys.argv[2], sys.argv[3]), token="s3cret")
    else:
        endpoint = Endpoint(uds=where, token="s3cret")
    rawproto.serve(handler, endpoint=endpoint, handler_threads=2)
    """
)


def _serve(tmp_path: Path, *args: str) -> ServerProcess:
    return ServerProcess.script(tmp_path, SERVER, *args)


def test_tls_and_a_token_over_tcp(tmp_path: Path, pki: dict[str, str]) -> None:
    server = _serve(tmp_path, "tcp", pki["cert"], pki["key"])
    try:
        options = ClientOptions(ca_file=pki["ca"], token="s3cret", connect_timeout=5)
        with RawDataClient(server.port, "127.0.0.1", options=options) as client:
            assert client.options is options
            assert client.send("/echo", [1, 2]) == [1, 2]

        async def main() -> list[object]:
            async with AsyncRawDataClient(server.port, "127.0.0.1", options=options) as client:
                return list(await asyncio.gather(*(client.send("/echo", i) for i in range(5))))

        assert asyncio.run(main()) == list(range(5))
        wrong = options.replace(token="wrong")
        with (
            RawDataClient(server.port, "127.0.0.1", options=wrong) as client,
            pytest.raises(Unauthorized),
        ):
            client.send("/echo", 1)
        hasty = options.replace(read_timeout=0.3)
        with (
            RawDataClient(server.port, "127.0.0.1", options=hasty) as client,
            pytest.raises(TimeoutError),
        ):
            client.send("/slow", 1)
    finally:
        assert server.stop() == 0


def test_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "n.sock")
    server = _serve(tmp_path, path)
    try:
        assert server.uds == path
        options = ClientOptions.with_timeout(30, token="s3cret")
        with RawDataClient(uds=path, options=options) as client:
            assert client.send("/echo", b"\x00" * 100_000) == b"\x00" * 100_000

        async def main() -> object:
            async with AsyncRawDataClient(uds=path, options=options) as client:
                return await client.send("/echo", "over a socket file")

        assert asyncio.run(main()) == "over a socket file"
        with (
            RawDataClient(uds=path, options=ClientOptions(token="")) as client,
            pytest.raises(Unauthorized),
        ):
            client.send("/echo", 1)
    finally:
        assert server.stop() == 0


def test_the_background_server_and_start_server_take_an_endpoint(
    tmp_path: Path, raw_server: Any
) -> None:
    path = str(tmp_path / "b.sock")
    server = raw_server(lambda resource, payload: payload, endpoint=Endpoint(uds=path, token="t"))
    assert (server.uds, server.token) == (path, "t")
    with RawDataClient(uds=path, options=ClientOptions(token="t")) as client:
        assert client.send("/echo", [3]) == [3]
    with pytest.raises(TypeError, match="give endpoint= or port=, not both"):
        BackgroundRawServer(print, port=5002, endpoint=Endpoint())

    async def main() -> object:
        started = await start_server(print, endpoint=Endpoint(port=0, token=""))
        try:
            assert started.port != 0
            async with AsyncRawDataClient(started.port, options=ClientOptions(token="")) as c:
                return await c.send("/x", None)
        finally:
            await started.stop()

    with pytest.raises(NotHandled):  # print answers None: not handled
        asyncio.run(main())
