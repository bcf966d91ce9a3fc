"""rawproto.native.server: the native framing served on a loop, in the background,
or in the foreground until a signal. Servers bind port 0 and report the port."""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
from typing import Any

import pytest

from dataserve.core.dispatch import Dispatcher
from dataserve.core.limits import Limits
from rawproto import RawDataClient
from rawproto.native.server import BackgroundRawServer, start_server
from tests.conftest import ServerProcess


def echo(resource: str, payload: Any) -> Any:
    return payload


def call(port: int, payload: Any, resource: str = "/x") -> Any:
    with RawDataClient(port) as client:
        return client.send(resource, payload)


def test_start_server_binds_port_0_and_stops() -> None:
    async def main() -> tuple[int, Any]:
        server = await start_server(echo, 0, handler_threads=2)
        assert server.port > 0 and server.limits.handler_threads == 2
        try:
            return server.port, await asyncio.to_thread(call, server.port, [1])
        finally:
            await server.stop()

    port, answer = asyncio.run(main())
    assert answer == [1]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_handler_given_by_name_is_imported() -> None:
    async def main() -> Any:
        server = await start_server("dataserve.example:ExampleHandler", 0)
        try:
            return await asyncio.to_thread(call, server.port, [4], "/xdata")
        finally:
            await server.stop()

    assert asyncio.run(main()) == [1, 2, 3, 4]


def test_a_caller_and_a_shared_dispatcher_are_served() -> None:
    async def twice(resource: str, payload: Any) -> Any:
        return payload * 2

    dispatcher = Dispatcher(1)

    async def main() -> Any:
        server = await start_server(caller=twice, dispatcher=dispatcher)
        try:
            return await asyncio.to_thread(call, server.port, 21)
        finally:
            await server.stop()

    try:
        assert asyncio.run(main()) == 42
    finally:
        dispatcher.close()


def test_a_given_listening_socket_is_served() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    async def main() -> Any:
        server = await start_server(echo, sock=sock)
        try:
            assert server.port == port
            return await asyncio.to_thread(call, port, "via sock")
        finally:
            await server.stop()

    assert asyncio.run(main()) == "via sock"


def test_a_background_server_and_its_address() -> None:
    server = BackgroundRawServer(echo, limits=Limits(handler_threads=3))
    assert server.address == ("127.0.0.1", 0) and server.limits.handler_threads == 3
    with server:
        assert server.address == ("127.0.0.1", server.port) and server.port > 0
        assert call(server.port, {"a": 1}) == {"a": 1}
    server.stop()  # stopped already: nothing to do


def test_two_background_servers_share_a_port_with_reuse_port() -> None:
    with (
        BackgroundRawServer(echo, reuse_port=True) as first,
        BackgroundRawServer(echo, port=first.port, reuse_port=True) as second,
    ):
        assert second.port == first.port
        assert call(first.port, 1) == 1


SERVE = textwrap.dedent(
    """
    from rawproto.native.server import serve
    serve("dataserve.example:ExampleHandler", 0)
    """
)


def test_serve_announces_the_real_port_and_stops_on_sigterm() -> None:
    proc = ServerProcess([sys.executable, "-c", SERVE])
    try:
        assert "(rawproto native)" in proc.lines[-1]
        assert f"tcp://127.0.0.1:{proc.port}" in proc.lines[-1]
        assert call(proc.port, [9], "/xdata") == [1, 2, 3, 9]
    finally:
        assert proc.stop() == 0
