"""dataserve.client.aio: ``AsyncHTTPDataClient``, the asyncio HTTP client.

Against a real server bound to port 0 (``serve`` fixture), its port read back.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from dataserve.client.aio import AsyncHTTPDataClient
from dataserve.core.errors import HandlerError, NotHandled
from dataserve.http.app import create_app


def handler(resource: str, payload: Any) -> Any:
    if resource == "/none":
        return None
    if resource == "/boom":
        raise RuntimeError("secret")
    return payload


@pytest.fixture
def server(serve: Any) -> Any:
    return serve(create_app(handler, handler_threads=4))


def test_values_and_errors(server: Any) -> None:
    async def main() -> None:
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
            assert await client.send("/x", {"a": [1]}) == {"a": [1]}
            with pytest.raises(NotHandled):
                await client.send("/none", 1)
            with pytest.raises(HandlerError):
                await client.send("/boom", 1)

    asyncio.run(main())


def test_concurrent_sends(server: Any) -> None:
    async def main() -> list[Any]:
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
            return list(await asyncio.gather(*(client.send("/x", i) for i in range(20))))

    assert asyncio.run(main()) == list(range(20))


def test_files_stream_both_ways(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(range(256)) * 400)
    target = tmp_path / "out.bin"

    async def main() -> tuple[int, int]:
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
            written = await client.send("/x", source, into=target)
            sink = io.BytesIO()
            with pytest.raises(NotHandled):
                await client.send("/none", 1, into=sink)
            return written, len(sink.getvalue())

    written, nothing = asyncio.run(main())
    assert written == 102_400 and target.read_bytes() == source.read_bytes()
    assert nothing == 0


def test_over_a_unix_socket(serve: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "http.sock")
    serve(create_app(handler), uds=path)

    async def main() -> Any:
        async with AsyncHTTPDataClient(uds=path) as client:
            return await client.send("/x", "über")

    assert asyncio.run(main()) == "über"
