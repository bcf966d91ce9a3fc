"""``ClientOptions``: a checked value whose defaults are the core's, and the
four clients that take it as ``options=`` instead of their separate keywords."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataserve import AsyncHTTPDataClient, ClientOptions, HTTPDataClient
from dataserve.client import DEFAULT_TIMEOUT
from dataserve.core import net
from dataserve.core.client_options import DEFAULT_CLIENT_OPTIONS
from rawproto import AsyncRawDataClient, RawDataClient


def test_the_defaults_are_the_cores_constants() -> None:
    options = ClientOptions()
    assert options == DEFAULT_CLIENT_OPTIONS
    assert options.timeouts() == {
        "connect": net.CONNECT_TIMEOUT,
        "read": net.CLIENT_TIMEOUT,
        "write": net.CLIENT_TIMEOUT,
        "pool": net.POOL_TIMEOUT,
    }
    assert httpx.Timeout(**options.timeouts()) == DEFAULT_TIMEOUT
    assert (options.token, options.tls, options.verify, options.ca_file, options.cert) == (
        None,
        False,
        True,
        None,
        None,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.verify = False  # type: ignore[misc]


def test_one_timeout_for_all_as_httpx_timeout_takes_it() -> None:
    options = ClientOptions.with_timeout(5, token="t")
    assert options.timeouts() == httpx.Timeout(5).as_dict()
    assert options.token == "t"
    assert ClientOptions.with_timeout(None).timeouts() == dict.fromkeys(
        ("connect", "read", "write", "pool")
    )


def test_paths_are_kept_as_strings() -> None:
    options = ClientOptions(ca_file=Path("/etc/ca.pem"), cert=(Path("/c.pem"), "/k.pem"))  # type: ignore[arg-type]
    assert options.ca_file == options.ca_path == "/etc/ca.pem"
    assert options.cert == ("/c.pem", "/k.pem")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"read_timeout": -1}, ValueError, "read_timeout must be 0 seconds or more"),
        ({"connect_timeout": math.nan}, ValueError, "connect_timeout must be 0 seconds"),
        ({"pool_timeout": "5"}, TypeError, "pool_timeout must be seconds or None, not str"),
        ({"write_timeout": True}, TypeError, "write_timeout must be seconds or None, not bool"),
        ({"token": b"t"}, TypeError, "token must be a string or None"),
        ({"tls": "yes"}, TypeError, "tls must be a bool or an ssl.SSLContext"),
        ({"verify": "no"}, TypeError, "verify must be True or False"),
        ({"ca_file": 1}, TypeError, "ca_file must be a path"),
        ({"cert": "both.pem"}, TypeError, r"cert must be a \(certfile, keyfile\) pair"),
        ({"cert": ("a", "b", "c")}, TypeError, "cert must be a"),
    ],
)
def test_a_bad_value_is_one_clear_error(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ClientOptions(**kwargs)


# --- the HTTP clients ------------------------------------------------------------


def _timeout(client: HTTPDataClient | AsyncHTTPDataClient) -> httpx.Timeout:
    return client._client.timeout


def test_the_http_clients_take_options() -> None:
    options = ClientOptions(connect_timeout=1, read_timeout=2, write_timeout=3, pool_timeout=4)
    with HTTPDataClient(5001, options=options.replace(token="t")) as client:
        assert client.options.token == "t"
        assert _timeout(client) == httpx.Timeout(connect=1, read=2, write=3, pool=4)
        assert client._client.headers["authorization"] == "Bearer t"

    async def main() -> None:
        async with AsyncHTTPDataClient(5001, options=options) as client:
            assert client.options is options
            assert _timeout(client) == httpx.Timeout(connect=1, read=2, write=3, pool=4)

    asyncio.run(main())


def test_the_http_keywords_still_work_and_become_options(monkeypatch: Any) -> None:
    monkeypatch.delenv("DATASERVE_TOKEN", raising=False)
    with HTTPDataClient(5001) as client:
        assert client.options == DEFAULT_CLIENT_OPTIONS
        assert _timeout(client) == DEFAULT_TIMEOUT
        assert "authorization" not in client._client.headers
    with HTTPDataClient(5001, timeout=7.5, token="k", verify=False) as client:
        assert client.options == ClientOptions.with_timeout(7.5, token="k", verify=False)
        assert _timeout(client) == httpx.Timeout(7.5)
    with HTTPDataClient(5001, timeout=httpx.Timeout(3, connect=1)) as client:
        assert client.options.connect_timeout == 1 and client.options.read_timeout == 3


def test_the_http_clients_refuse_options_and_keywords_together() -> None:
    with pytest.raises(TypeError, match="give options= or timeout=, token=, not both"):
        HTTPDataClient(5001, options=ClientOptions(), timeout=3, token="t")
    with pytest.raises(TypeError, match="give options= or verify=, not both"):
        AsyncHTTPDataClient(5001, options=ClientOptions(), verify=False)


def test_an_ssl_context_is_used_as_it_is() -> None:
    context = ssl.create_default_context()
    options = ClientOptions(tls=context)
    with HTTPDataClient(5001, "https://localhost:", options=options) as client:
        assert client.options.tls is context
    with RawDataClient(5002, options=options) as raw:
        assert raw.ssl_context is context


# --- the raw clients -------------------------------------------------------------


@pytest.mark.parametrize("client_class", [RawDataClient, AsyncRawDataClient])
def test_the_raw_clients_take_options(client_class: Any) -> None:
    options = ClientOptions(connect_timeout=1, read_timeout=2, token="t")
    client = client_class(5002, options=options)
    assert client.options is options
    assert (client.timeout, client.connect_timeout, client.token) == (2, 1, "t")
    assert client.ssl_context is None  # plain TCP unless TLS is asked for
    verifying = client_class(5002, options=ClientOptions(verify=False))
    assert verifying.ssl_context is not None
    assert verifying.ssl_context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize("client_class", [RawDataClient, AsyncRawDataClient])
def test_the_raw_keywords_still_work_and_become_options(client_class: Any) -> None:
    client = client_class(5002, timeout=9, connect_timeout=3, token="k", tls=True)
    assert client.options == ClientOptions(
        connect_timeout=3, read_timeout=9, write_timeout=9, token="k", tls=True
    )
    assert (client.timeout, client.connect_timeout) == (9, 3)
    assert client.ssl_context is not None
    plain = client_class(5002)
    assert (plain.timeout, plain.connect_timeout) == (net.CLIENT_TIMEOUT, net.CONNECT_TIMEOUT)
    with pytest.raises(TypeError, match="give options= or connect_timeout=, tls=, not both"):
        client_class(5002, options=ClientOptions(), connect_timeout=1, tls=True)


def test_the_docs_table_shows_every_field_and_its_default() -> None:
    from tests.core.test_endpoint import doc_defaults

    defaults = {f.name: f.default for f in dataclasses.fields(ClientOptions)}
    assert doc_defaults("## ClientOptions:") == defaults
