"""dataserve.client.base: the server's URL and httpx's options, shared by both HTTP clients."""

from __future__ import annotations

import ssl

import httpx
import pytest

from dataserve.client.base import DEFAULT_TIMEOUT, ClientBase, base_url, client_options
from dataserve.core.client_options import ClientOptions
from dataserve.core.net import (
    CLIENT_TIMEOUT,
    CONNECT_TIMEOUT,
    POOL_TIMEOUT,
    loopback_socket_options,
)
from dataserve.core.security import TOKEN_ENV


def test_the_default_timeout_connects_quickly_and_waits_long_for_answers() -> None:
    assert DEFAULT_TIMEOUT.connect == CONNECT_TIMEOUT
    assert DEFAULT_TIMEOUT.read == DEFAULT_TIMEOUT.write == CLIENT_TIMEOUT
    assert DEFAULT_TIMEOUT.pool == POOL_TIMEOUT


def test_the_url_is_the_address_and_the_port_as_in_the_seed() -> None:
    assert base_url(8080, "http://10.0.0.5:", None) == "http://10.0.0.5:8080"
    assert base_url("443", "https://h:", None) == "https://h:443"


def test_over_a_unix_socket_the_url_only_names_the_host() -> None:
    assert base_url(None, "http://localhost:", "/tmp/s.sock") == "http://localhost"
    with pytest.raises(TypeError, match="give the server's port, or uds="):
        base_url(None, "http://localhost:", None)


def test_client_options_carry_the_token_headers_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    options = client_options(ClientOptions.with_timeout(5.0, token="t0k"), {"x-a": "1"})
    assert options["headers"] == {"x-a": "1", "authorization": "Bearer t0k"}
    assert options["timeout"] == httpx.Timeout(5.0)
    assert isinstance(options["verify"], ssl.SSLContext)
    assert options["verify"].verify_mode == ssl.CERT_REQUIRED
    lax = client_options(ClientOptions.with_timeout(None, verify=False), None)
    assert lax["headers"] == {} and lax["verify"].verify_mode == ssl.CERT_NONE


def test_the_token_comes_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert client_options(ClientOptions(), None)["headers"] == {"authorization": "Bearer from-env"}


def test_the_base_class_builds_options_once_and_leaves_opening_to_the_clients() -> None:
    opened: list[tuple[dict[str, object], object]] = []

    class Recording(ClientBase):
        def _open(self, options: dict[str, object], transport: object) -> None:
            opened.append((options, transport))

    client = Recording(9000, "http://192.0.2.1:", max_connections=7)
    assert client.url == "http://192.0.2.1:9000"
    ((options, transport),) = opened
    assert transport is None and isinstance(options["limits"], httpx.Limits)
    assert options["limits"].max_connections == 7
    Recording(uds="/tmp/x.sock", max_connections=3)
    options, transport = opened[1]
    assert "limits" not in options
    assert transport["uds"] == "/tmp/x.sock" and transport["limits"].max_connections == 3  # type: ignore[index]
    # A loopback server: its own transport (no proxy from the environment), unpaced.
    Recording(9000, "http://localhost:", max_connections=5)
    options, transport = opened[2]
    assert "limits" not in options and transport["limits"].max_connections == 5  # type: ignore[index]
    assert transport["socket_options"] == loopback_socket_options()  # type: ignore[index]
    with pytest.raises(TypeError, match="use HTTPDataClient or AsyncHTTPDataClient"):
        ClientBase(9000)
