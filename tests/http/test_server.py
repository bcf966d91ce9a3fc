"""dataserve.http.server: uvicorn configured from ``Limits``, and servers on the shared loop.

Servers bind port 0 and the test reads the port back.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataserve.core.limits import Limits
from dataserve.core.net import BACKLOG
from dataserve.core.security import TLSConfig
from dataserve.http.app import create_app
from dataserve.http.connections import CountedHttpProtocol
from dataserve.http.protocol import DataServeHttpProtocol
from dataserve.http.server import (
    BackgroundLoop,
    BackgroundServer,
    server_url,
    uvicorn_config,
)
from dataserve.ops.config import OpsConfig


def echo(resource: str, payload: Any) -> Any:
    return payload


def test_uvicorn_config_takes_its_limits_from_limits() -> None:
    limits = Limits(max_connections=50, keepalive_timeout=7, max_header_size=4096, max_pipelined=9)
    config = uvicorn_config(create_app(echo, ops=OpsConfig(metrics=False)), limits)
    assert config.limit_concurrency == 51  # uvicorn counts the new connection too
    assert config.timeout_keep_alive == 7
    assert config.h11_max_incomplete_event_size == 4096
    assert config.backlog == BACKLOG and config.access_log is False
    assert config.http is DataServeHttpProtocol
    assert config.dataserve_max_pipelined == 9  # type: ignore[attr-defined]
    assert config.dataserve_header_timeout == limits.header_timeout  # type: ignore[attr-defined]
    assert config.dataserve_tls is None  # type: ignore[attr-defined]


def test_with_metrics_on_connections_are_counted() -> None:
    config = uvicorn_config(create_app(echo), Limits())
    assert config.http is CountedHttpProtocol


def test_tls_is_our_protocols_and_a_bad_certificate_fails_before_serving(
    pki: dict[str, str], tmp_path: Path
) -> None:
    tls = TLSConfig(pki["cert"], pki["key"])
    config = uvicorn_config(create_app(echo), Limits(), tls=tls)
    assert config.dataserve_tls == tls  # type: ignore[attr-defined]
    assert config.ssl_certfile is None  # not uvicorn's TLS
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(Exception):  # noqa: B017 - ssl's error, whatever its class
        uvicorn_config(create_app(echo), Limits(), tls=TLSConfig(str(bad), pki["key"]))


def test_another_protocol_gets_uvicorns_tls(pki: dict[str, str]) -> None:
    tls = TLSConfig(pki["cert"], pki["key"], client_ca=pki["ca"])
    config = uvicorn_config(create_app(echo), Limits(), tls=tls, http="h11")
    assert config.ssl_certfile == pki["cert"] and config.ssl_ca_certs == pki["ca"]
    assert config.dataserve_tls is None  # type: ignore[attr-defined]


def test_server_url(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert server_url(sock) == f"http://127.0.0.1:{port}"
        assert server_url(sock, tls=True) == f"https://127.0.0.1:{port}"
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(path)
        assert server_url(unix) == f"unix:{path}"


def test_a_background_server_binds_port_0_serves_and_stops() -> None:
    server = BackgroundServer(create_app(echo))
    assert server.port == 0
    with server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        r = httpx.put(f"{server.url}/x", json=[1, 2], timeout=10)
        assert r.json() == [1, 2]
    with pytest.raises(httpx.ConnectError):
        httpx.put(f"{server.url}/x", json=1, timeout=10)
    server.stop()  # stopped already: nothing to do


def test_a_port_in_use_fails_at_start() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        with pytest.raises(OSError):
            BackgroundServer(create_app(echo), port=port).start()


def test_a_background_server_on_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "http.sock")
    with BackgroundServer(create_app(echo), uds=path) as server:
        assert server.url == f"unix:{path}"
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport, base_url="http://local") as client:
            assert client.put("/x", json=[7]).json() == [7]
    assert not Path(path).exists()


def test_servers_share_one_loop_thread() -> None:
    assert BackgroundLoop.shared() is BackgroundLoop.shared()
