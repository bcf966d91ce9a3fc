"""rawproto.server: the server's import path of earlier releases, kept for users."""

from __future__ import annotations

import asyncio
from typing import Any

import rawproto.server as old
from rawproto import RawDataClient
from rawproto.native import server as native


def echo(resource: str, payload: Any) -> Any:
    return payload


def test_the_old_names_are_the_new_objects() -> None:
    assert old.BackgroundRawServer is native.BackgroundRawServer
    assert old.serve is native.serve
    assert old.start_server is native.start_server
    assert sorted(old.__all__) == ["BackgroundRawServer", "serve", "start_server"]


def test_start_server_from_the_old_path_binds_port_0_and_serves() -> None:
    async def main() -> Any:
        server = await old.start_server(echo, 0)
        try:
            assert server.port > 0
            return await asyncio.to_thread(_one_call, server.port)
        finally:
            await server.stop()

    assert asyncio.run(main()) == [1, 2]


def _one_call(port: int) -> Any:
    with RawDataClient(port) as client:
        return client.send("/x", [1, 2])
