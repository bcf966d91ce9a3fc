"""The exception tree: client failures are also Python's own exceptions.

``except TimeoutError:`` and ``except ConnectionError:`` (the built-ins)
catch what the clients raise, against real servers and real sockets, while
the names and ``except DataServeError:`` keep working.
"""

from __future__ import annotations

import asyncio
import builtins
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import dataserve
import rawproto
from dataserve import AsyncHTTPDataClient, HTTPDataClient, create_app
from dataserve.core import errors
from dataserve.core.net import bind_socket


def test_the_transport_errors_are_also_the_builtin_ones() -> None:
    assert issubclass(errors.TimeoutError, builtins.TimeoutError)
    assert issubclass(errors.ConnectError, builtins.ConnectionError)
    assert issubclass(errors.ConnectionClosed, builtins.ConnectionError)
    for cls in (errors.TimeoutError, errors.ConnectError, errors.ConnectionClosed):
        assert issubclass(cls, errors.TransportError)
        assert issubclass(cls, errors.DataServeError)
        exc = cls("what happened")
        assert str(exc) == exc.message == "what happened"
    # The names stay the package's own; rawproto exports the very same classes.
    assert dataserve.TimeoutError is errors.TimeoutError is rawproto.TimeoutError
    assert dataserve.TimeoutError is not builtins.TimeoutError
    assert rawproto.ConnectError is dataserve.ConnectError
    # An error answer is not a connection failure.
    assert not issubclass(errors.ResponseError, OSError)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused."""
    with bind_socket("127.0.0.1", 0, listen=False) as sock:
        yield sock.getsockname()[1]


@pytest.fixture
def slow_server(serve: Any) -> Iterator[Any]:
    """A server whose handler answers only once the test lets it."""
    release = threading.Event()

    async def handler(resource: str, payload: Any) -> Any:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        return payload

    yield serve(create_app(handler))
    release.set()


@pytest.fixture
def closing_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A listener that accepts each connection, reads a little, and closes it
    (with ``reset``: at once, with an RST, as a crashed peer does)."""
    reset = getattr(request, "param", False)
    listener = bind_socket("127.0.0.1", 0)

    def run() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                if reset:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(10)


def test_http_client_refused_is_a_connection_error(refused_port: int) -> None:
    client = HTTPDataClient(refused_port, "http://127.0.0.1:")
    with client, pytest.raises(ConnectionError) as caught:
        client.send("/x", [1])
    assert isinstance(caught.value, dataserve.ConnectError)
    assert f"127.0.0.1:{refused_port}" in str(caught.value)


def test_raw_client_refused_is_a_connection_error(refused_port: int) -> None:
    with pytest.raises(ConnectionError) as caught, rawproto.RawDataClient(refused_port) as client:
        client.send("/x", [1])
    assert isinstance(caught.value, rawproto.ConnectError)


def test_http_client_timeout_is_a_timeout_error(slow_server: Any) -> None:
    client = HTTPDataClient(slow_server.port, "http://127.0.0.1:", timeout=0.2)
    with client, pytest.raises(builtins.TimeoutError) as caught:
        client.send("/x", [1])
    assert isinstance(caught.value, dataserve.TimeoutError)


def test_async_http_client_timeout_is_a_timeout_error(slow_server: Any) -> None:
    async def main() -> None:
        async with AsyncHTTPDataClient(slow_server.port, "http://127.0.0.1:", timeout=0.2) as c:
            await c.send("/x", [1])

    with pytest.raises(builtins.TimeoutError) as caught:
        asyncio.run(main())
    assert isinstance(caught.value, dataserve.TimeoutError)


@pytest.mark.parametrize("closing_port", [False, True], ids=["close", "reset"], indirect=True)
def test_a_server_that_closes_mid_exchange_is_a_connection_error(closing_port: int) -> None:
    client = HTTPDataClient(closing_port, "http://127.0.0.1:")
    with client, pytest.raises(ConnectionError) as caught:
        client.send("/x", [1])
    assert isinstance(caught.value, dataserve.ConnectionClosed)
