"""dataserve.client.sync: ``HTTPDataClient``, the blocking HTTP client (seed 001's API).

Against a real server bound to port 0 (``serve`` fixture), its port read back.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import pytest

from dataserve.client.sync import HTTPDataClient
from dataserve.core.errors import BadRequest, ConnectError, HandlerError, NotHandled, Unauthorized
from dataserve.http.app import create_app


def handler(resource: str, payload: Any) -> Any:
    if resource == "/none":
        return None
    if resource == "/bad":
        raise BadRequest("not that")
    if resource == "/boom":
        raise RuntimeError("secret")
    if resource == "/size":
        return len(payload)
    return payload


@pytest.fixture
def server(serve: Any) -> Any:
    return serve(create_app(handler))


def test_values_round_trip(server: Any) -> None:
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client.url == f"http://127.0.0.1:{server.port}"
        for value in ([1, None, "a"], {"k": 1.5}, "text", b"\x00\xff"):
            assert client.send("/echo", value) == value


def test_errors_raise_by_status(server: Any) -> None:
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        with pytest.raises(NotHandled):
            client.send("/none", 1)
        with pytest.raises(BadRequest, match="not that"):
            client.send("/bad", 1)
        with pytest.raises(HandlerError) as info:
            client.send("/boom", 1)
        assert "secret" not in str(info.value)


def test_a_file_payload_streams_and_a_reply_streams_into_a_file(
    server: Any, tmp_path: Path
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"y" * 200_000)
    progress: list[tuple[str, int]] = []
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client.send("/size", source) == 200_000
        target = tmp_path / "out.bin"
        written = client.send(
            "/echo",
            io.BytesIO(b"z" * 5000),
            into=target,
            progress=lambda d, n, t: progress.append((d, n)),
        )
        assert written == 5000 and target.read_bytes() == b"z" * 5000
        with pytest.raises(NotHandled):
            client.send("/none", 1, into=io.BytesIO())
    assert progress and progress[-1][1] == 5000


def test_a_token_is_sent_as_a_bearer(serve: Any) -> None:
    server = serve(create_app(handler, token="s3cret"))
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client, pytest.raises(Unauthorized):
        client.send("/echo", 1)
    with HTTPDataClient(server.port, "http://127.0.0.1:", token="s3cret") as client:
        assert client.send("/echo", 2) == 2


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as held:  # bound, not listening: refused, and kept from others
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with HTTPDataClient(port, "http://127.0.0.1:") as client, pytest.raises(ConnectError):
            client.send("/x", 1)


def test_over_a_unix_socket(serve: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "http.sock")
    serve(create_app(handler), uds=path)
    with HTTPDataClient(uds=path) as client:
        assert client.send("/echo", [5]) == [5]


def test_a_loopback_server_is_reached_directly_whatever_proxy_the_environment_names(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as dead:  # a port nothing listens on: a proxy there refuses
        dead.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead.getsockname()[1]}")
        monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{dead.getsockname()[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            assert client.send("/echo", "direct") == "direct"
