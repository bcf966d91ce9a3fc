"""rawproto.tinyproto.client: ``TinyProtoClient`` against a server on port 0."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from rawproto.tinyproto.bridge import TinyProtoError
from rawproto.tinyproto.client import TinyProtoClient
from rawproto.tinyproto.endpoint import TinyProtoConnectionDetails

from .test_tinyproto import Collector, ReadyServer, Running


@pytest.fixture
def running() -> Iterator[Running]:
    server = ReadyServer()
    server.set_conn_handler(Collector)
    r = Running(server)
    yield r
    r.stop()


@pytest.mark.parametrize("bad", [0, -1, "5", True])
def test_set_timeout_takes_a_positive_number(bad: object) -> None:
    client = TinyProtoClient()
    with pytest.raises(ValueError, match="must be a positive number"):
        client.set_timeout(bad)  # type: ignore[arg-type]
    client.set_timeout(2.5)
    assert client.socket_timeout == 2.5


def test_connect_to_returns_an_index_and_the_connection_talks(running: Running) -> None:
    client = TinyProtoClient(Collector, timeout=7)
    index = client.connect_to("127.0.0.1", running.port)
    conn = client.active_connections[index]
    assert index == 0 and isinstance(conn, Collector)
    assert conn.socket_o.gettimeout() == 7  # the client's timeout is the connection's
    assert conn.remote_details == ("127.0.0.1", running.port)
    assert running.server.connected.wait(10)
    (server_conn,) = running.server.active_connections
    server_conn.transmit(b"from the server")
    assert conn.next_message() == b"from the server"
    second = client.connect_to(TinyProtoConnectionDetails("127.0.0.1", running.port))
    assert second == 1
    client._shutdown_active_cons()
    for c in client.active_connections:
        c.join(10)


def test_a_refused_connection_is_a_tinyproto_error() -> None:
    with socket.socket() as held:  # bound, not listening: refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with pytest.raises(TinyProtoError, match=f"cannot connect to 127.0.0.1:{port}"):
            TinyProtoClient(timeout=5).connect_to("127.0.0.1", port)


def test_a_peer_that_is_not_tinyproto_fails_the_handshake() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def wrong_byte() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"\x01")
                conn.recv(16)

        t = threading.Thread(target=wrong_byte)
        t.start()
        try:
            with pytest.raises(TinyProtoError, match="Initialisation error"):
                TinyProtoClient(timeout=5).connect_to("127.0.0.1", port)
        finally:
            t.join(10)


def test_start_runs_the_hooks_until_shutdown() -> None:
    calls: list[str] = []

    class Client(TinyProtoClient):
        loop_pass_interval = 0.001

        def pre_loop(self) -> None:
            calls.append("pre_loop")

        def loop_pass(self) -> None:
            calls.append("loop_pass")
            if calls.count("loop_pass") == 3:
                self.shutdown = True

        def post_loop(self) -> None:
            calls.append("post_loop")

    Client().start()
    assert calls == ["pre_loop", "loop_pass", "loop_pass", "loop_pass", "post_loop"]
