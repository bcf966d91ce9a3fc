"""rawproto.native.client: ``RawDataClient``, the blocking native-framing client.

Against a real server bound to port 0 (its port read back), on plain sockets.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataserve.core.errors import (
    BadRequest,
    ConnectError,
    ConnectionClosed,
    HandlerError,
    NotHandled,
    TimeoutError,
    Unauthorized,
)
from rawproto import BackgroundRawServer
from rawproto.native.client import DEFAULT_TIMEOUT, AsyncRawDataClient, RawDataClient


def handler(resource: str, payload: Any) -> Any:
    if resource == "/none":
        return None
    if resource == "/bad":
        raise BadRequest("not that")
    if resource == "/boom":
        raise RuntimeError("secret")
    return payload


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundRawServer]:
    with BackgroundRawServer(handler) as s:
        yield s


def test_values_round_trip(server: BackgroundRawServer) -> None:
    with RawDataClient(server.port) as client:
        for value in ([1, "a", None], {"k": 2.5}, "text", b"\x00\x01", 0):
            assert client.send("/echo", value) == value


def test_errors_are_the_http_clients_exceptions(server: BackgroundRawServer) -> None:
    with RawDataClient(server.port) as client:
        with pytest.raises(NotHandled):
            client.send("/none", 1)
        with pytest.raises(BadRequest, match="not that"):
            client.send("/bad", 1)
        with pytest.raises(HandlerError) as info:
            client.send("/boom", 1)
        assert "secret" not in str(info.value)
        assert client.send("/echo", 1) == 1  # the connection survives errors


def test_a_file_streams_out_and_a_reply_streams_into_a_file(
    server: BackgroundRawServer, tmp_path: Path
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 100_000)
    target = tmp_path / "out.bin"
    seen: list[tuple[str, int, int | None]] = []
    with RawDataClient(server.port) as client:
        written = client.send(
            "/echo", source, into=target, progress=lambda d, n, t: seen.append((d, n, t))
        )
        assert written == 100_000 and target.read_bytes() == source.read_bytes()
        sink = io.BytesIO()
        assert client.send("/echo", [1], into=sink) == len(sink.getvalue())
    sent = [done for direction, done, _ in seen if direction == "send"]
    assert sent and sent[-1] == 100_000 and sent == sorted(sent)


def test_the_client_reconnects_after_close(server: BackgroundRawServer) -> None:
    client = RawDataClient(server.port)
    assert client.send("/echo", 1) == 1
    client.close()
    assert client.send("/echo", 2) == 2  # a fresh connection
    client.close()
    client.close()


def test_a_refused_connection_names_the_server() -> None:
    with socket.socket() as held:  # bound, not listening: refused, and kept from others
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"), RawDataClient(port) as c:
            c.send("/x", 1)


def test_no_answer_within_the_timeout_is_a_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        with RawDataClient(port, timeout=0.2) as client, pytest.raises(TimeoutError):
            client.send("/x", 1)


def test_a_server_closing_at_once_is_connection_closed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with RawDataClient(port, timeout=5) as client:

            def close_at_once() -> None:
                conn, _ = listener.accept()
                conn.close()

            t = threading.Thread(target=close_at_once)
            t.start()
            try:
                with pytest.raises(ConnectionClosed):
                    client.send("/x", 1)
            finally:
                t.join(10)


def test_a_token_is_required_when_the_server_has_one() -> None:
    with BackgroundRawServer(handler, token="s3cret") as s:
        with RawDataClient(s.port, token="wrong") as client, pytest.raises(Unauthorized):
            client.send("/echo", 1)
        with RawDataClient(s.port, token="s3cret") as client:
            assert client.send("/echo", 1) == 1


def test_a_unix_socket_server(tmp_path: Path) -> None:
    path = tmp_path / "native.sock"
    with BackgroundRawServer(handler, uds=path), RawDataClient(uds=path) as client:
        assert client.address == f"unix:{path}"
        assert client.send("/echo", [3]) == [3]


def test_the_module_exports_both_clients() -> None:
    assert issubclass(AsyncRawDataClient, object) and DEFAULT_TIMEOUT > 0
