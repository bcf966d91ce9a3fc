"""The native framing over a Unix domain socket: server (``uds=``, ``--uds``) and both clients."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from dataserve.core.errors import ConnectError
from rawproto import AsyncRawDataClient, BackgroundRawServer, RawDataClient
from tests.conftest import ServerProcess

from .conftest import finish


def echo(resource: str, payload: Any) -> Any:
    return payload


def test_both_clients_talk_to_a_server_on_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "native.sock"
    payload = os.urandom(3 * 1024 * 1024)  # large: read into its own buffer on both sides
    with BackgroundRawServer(echo, uds=path):
        assert stat.S_ISSOCK(path.stat().st_mode)
        with RawDataClient(uds=path) as client:
            assert client.send("/echo", [1, "two"]) == [1, "two"]
            assert client.send("/echo", payload) == payload

        async def main() -> Any:
            async with AsyncRawDataClient(uds=str(path)) as client:
                return await asyncio.gather(
                    client.send("/echo", "text"), client.send("/echo", payload)
                )

        assert asyncio.run(main()) == ["text", payload]
    assert not path.exists()  # the server removes its socket file when it stops


def test_a_socket_file_left_behind_is_replaced_and_any_other_file_is_kept(
    tmp_path: Path,
) -> None:
    stale = tmp_path / "stale.sock"
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(stale))
    left.close()  # the file stays, nobody listens
    with BackgroundRawServer(echo, uds=stale), RawDataClient(uds=stale) as client:
        assert client.send("/x", "ok") == "ok"
    regular = tmp_path / "data.txt"
    regular.write_text("keep me")
    with pytest.raises(FileExistsError):
        BackgroundRawServer(echo, uds=regular).start()
    assert regular.read_text() == "keep me"


def test_nothing_listening_is_a_connect_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nobody.sock"
    with pytest.raises(ConnectError, match=f"unix:{path}"), RawDataClient(uds=path) as client:
        client.send("/x", "hello")

    async def main() -> None:
        async with AsyncRawDataClient(uds=path) as client:
            await client.send("/x", "hello")

    with pytest.raises(ConnectError, match=f"unix:{path}"):
        asyncio.run(main())


def test_a_client_needs_a_port_or_a_socket_path() -> None:
    with pytest.raises(TypeError, match="uds="):
        RawDataClient()


def test_the_command_serves_on_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "cli.sock"
    server = ServerProcess(
        [sys.executable, "-m", "rawproto", "serve", "native", "--uds", str(path)]
    )
    try:
        assert server.uds == str(path)
        with RawDataClient(uds=path) as client:
            assert client.send("/xdata", [4, 5, 6]) == [1, 2, 3, 4, 5, 6]  # the seed example
    finally:
        status, output = finish(server)
    assert status == 0 and f"on unix:{path}" in output
    assert not path.exists()
