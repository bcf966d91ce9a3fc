"""rawproto.tcpy.client: ``TCPClient``, a blocking tcpy client on a plain socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dataserve.core import errors
from rawproto.tcpy.client import TCPClient
from rawproto.tcpy.handler import TCPHandler
from rawproto.tcpy.server import TCPServer

from .helpers import TIMEOUT, refused_port


class Echo(TCPHandler):
    def execute(self) -> dict[str, Any]:
        return self.success(**self.params)


@pytest.fixture
def server() -> Iterator[TCPServer]:
    srv = TCPServer("127.0.0.1", 0, {"echo": Echo}).start()
    yield srv
    srv.stop()


def test_execute_opens_a_connection_per_request_unless_connected(server: TCPServer) -> None:
    client = TCPClient("127.0.0.1", server.port, timeout=TIMEOUT)
    assert not client.connected
    assert client.execute("echo", a=1) == {"success": True, "a": 1}
    assert not client.connected  # closed after the request, as the original does
    client.connect()
    assert client.connected
    assert client.execute("echo", b=[1, 2]) == {"success": True, "b": [1, 2]}
    assert client.connected  # kept open for more
    client.disconnect()
    client.disconnect()
    assert not client.connected


def test_as_a_context_manager_it_stays_connected(server: TCPServer) -> None:
    with TCPClient("127.0.0.1", server.port, timeout=TIMEOUT) as client:
        assert client.connected
        for i in range(3):
            assert client.execute("echo", i=i)["i"] == i
    assert not client.connected


def test_recv_without_a_connection_is_connection_closed() -> None:
    with pytest.raises(errors.ConnectionClosed, match="not connected"):
        TCPClient("127.0.0.1", 1).recv()


def test_a_refused_connection_is_a_connect_error() -> None:
    with refused_port() as port, pytest.raises(errors.ConnectError, match=f"127.0.0.1:{port}"):
        TCPClient("127.0.0.1", port, timeout=TIMEOUT).execute("echo")


def test_no_answer_is_a_timeout_and_the_connection_is_dropped() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        client = TCPClient("127.0.0.1", silent.getsockname()[1], timeout=0.1)
        client.connect()
        with pytest.raises(errors.TimeoutError, match="within 0.1 s"):
            client.execute("echo")
        assert not client.connected


def test_a_server_closing_without_answering_is_connection_closed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def close_at_once() -> None:
            conn, _ = listener.accept()
            conn.close()

        t = threading.Thread(target=close_at_once)
        t.start()
        try:
            with pytest.raises(errors.ConnectionClosed):
                TCPClient("127.0.0.1", port, timeout=TIMEOUT).execute("echo")
        finally:
            t.join(10)


def test_the_port_is_an_int_and_tls_is_off_by_default() -> None:
    client = TCPClient("h", "8080")  # type: ignore[arg-type]
    assert client.port == 8080 and client.ssl_context is None
    assert TCPClient("h", 1, verify=False).ssl_context is not None
