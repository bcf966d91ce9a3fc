"""rawproto.tinyproto.server: ``TinyProtoServer``, bound to port 0 with the port read back."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rawproto.tinyproto.bridge import TinyProtoError
from rawproto.tinyproto.endpoint import TinyProtoConnectionDetails
from rawproto.tinyproto.server import TinyProtoServer

from .test_tinyproto import Collector, ReadyServer, Running, connect


def test_addresses_are_checked_when_added() -> None:
    server = TinyProtoServer()
    server.add_addr("127.0.0.1", 0)
    server.add_addr("::1", 8000)
    assert server.listen_addrs == [("127.0.0.1", 0), ("::1", 8000)]
    with pytest.raises(ValueError, match="Incorrect ip address"):
        server.add_addr("localhost", 1)
    with pytest.raises(ValueError, match="between 1 and 65535"):
        server.add_addr("127.0.0.1", 70000)


def test_the_tinyproto_3_constructor() -> None:
    server = TinyProtoServer(
        [TinyProtoConnectionDetails("127.0.0.1", 0)], Collector, connection_limit=3
    )
    assert server.listen_addrs == [("127.0.0.1", 0)]
    assert server.connection_handler is Collector and server.connection_limit == 3


def test_start_without_addresses_is_an_error() -> None:
    with pytest.raises(TinyProtoError, match="No addresses defined"):
        TinyProtoServer().start()


class ShutdownSeen(ReadyServer):
    def __init__(self) -> None:
        super().__init__()
        self.shut = threading.Event()

    def conn_shutdown(self, conn_o: Any) -> None:
        super().conn_shutdown(conn_o)
        self.shut.set()


def test_ports_are_the_bound_ones_and_hooks_frame_each_connection() -> None:
    server = ShutdownSeen()
    server.set_conn_handler(Collector)
    running = Running(server)  # binds 127.0.0.1:0 and reads the port back
    try:
        assert server.ports == [running.port] and running.port > 0
        client, conn = connect(running.port)
        assert server.connected.wait(10)
        ((event, server_conn),) = server.events
        assert event == "conn_init" and server_conn in server.active_connections
        conn.transmit(b"hi")
        assert server_conn.next_message() == b"hi"
        client.shutdown = True
        client._shutdown_active_cons()
        conn.join(10)
        assert server_conn.ended.wait(10)
        assert server.shut.wait(10)  # conn_shutdown runs on the server's thread after
    finally:
        running.stop()
    assert ("conn_shutdown", server_conn) in server.events
    assert server.listen_socks == [] and server.active_connections == []


def test_a_server_cannot_start_twice() -> None:
    server = ReadyServer()
    running = Running(server)
    try:
        with pytest.raises(TinyProtoError, match="already active listeners"):
            server.start()
    finally:
        running.stop()


def test_conn_hooks_may_take_the_id_and_the_connection() -> None:
    seen: list[Any] = []
    ready = threading.Event()

    class TwoArgs(ReadyServer):
        def conn_init(self, conn_id: Any, conn_o: Any = None) -> None:  # type: ignore[override]
            seen.append((conn_id, conn_o))
            ready.set()

    server = TwoArgs()
    running = Running(server)
    try:
        client, conn = connect(running.port)
        assert ready.wait(10)
        ((conn_id, conn_o),) = seen
        assert conn_id == conn_o.connection_id
        client._shutdown_active_cons()
        conn.join(10)
    finally:
        running.stop()
