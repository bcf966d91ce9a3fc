"""rawproto.native.aclient: ``AsyncRawDataClient``, pipelining on one connection."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataserve.core.errors import ConnectError, HandlerError, NotHandled, Unauthorized
from rawproto import BackgroundRawServer
from rawproto.native.aclient import AsyncRawDataClient


def handler(resource: str, payload: Any) -> Any:
    if resource == "/none":
        return None
    if resource == "/boom":
        raise RuntimeError("secret")
    return payload


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundRawServer]:
    with BackgroundRawServer(handler, handler_threads=4) as s:
        yield s


def test_values_round_trip_and_errors_raise(server: BackgroundRawServer) -> None:
    async def main() -> None:
        async with AsyncRawDataClient(server.port) as client:
            assert await client.send("/x", {"a": [1, 2]}) == {"a": [1, 2]}
            assert await client.send("x", b"\x00") == b"\x00"
            with pytest.raises(NotHandled):
                await client.send("/none", 1)
            with pytest.raises(HandlerError):
                await client.send("/boom", 1)
            assert await client.send("/x", 1) == 1

    asyncio.run(main())


def test_concurrent_sends_share_one_connection_and_get_their_own_answers(
    server: BackgroundRawServer,
) -> None:
    connected: list[Any] = []

    async def main() -> list[Any]:
        async with AsyncRawDataClient(server.port) as client:
            answers = await asyncio.gather(*(client.send("/x", i) for i in range(50)))
            connected.append(client._session)
            return list(answers)

    assert asyncio.run(main()) == list(range(50))
    assert connected[0] is not None


def test_streaming_a_file_out_and_a_reply_into_a_file(
    server: BackgroundRawServer, tmp_path: Path
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    target = tmp_path / "out.bin"

    async def main() -> tuple[int, int]:
        async with AsyncRawDataClient(server.port) as client:
            written = await client.send("/x", source, into=target)
            sink = io.BytesIO()
            small = await client.send("/x", [1, 2], into=sink)
            return written, small

    written, small = asyncio.run(main())
    assert written == 256_000 and target.read_bytes() == source.read_bytes()
    assert small > 0


def test_a_refused_connection_names_the_server() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]

        async def main() -> None:
            async with AsyncRawDataClient(port) as client:
                await client.send("/x", 1)

        with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
            asyncio.run(main())


def test_a_wrong_token_is_unauthorized() -> None:
    with BackgroundRawServer(handler, token="s3cret") as s:

        async def main(token: str) -> Any:
            async with AsyncRawDataClient(s.port, token=token) as client:
                return await client.send("/x", 1)

        with pytest.raises(Unauthorized):
            asyncio.run(main("wrong"))
        assert asyncio.run(main("s3cret")) == 1


def test_aclose_fails_what_is_still_waiting() -> None:
    release, started = threading.Event(), threading.Event()

    def slow(resource: str, payload: Any) -> Any:
        started.set()
        release.wait(10)
        return payload

    with BackgroundRawServer(slow) as s:

        async def main() -> BaseException | None:
            client = AsyncRawDataClient(s.port)
            pending = asyncio.ensure_future(client.send("/x", 1))
            # the request is in flight once the server's handler has it
            assert await asyncio.to_thread(started.wait, 10)
            await client.aclose()
            try:
                await asyncio.wait_for(pending, 10)
            except Exception as exc:
                return exc
            return None

        try:
            error = asyncio.run(main())
        finally:
            release.set()
    assert error is not None
