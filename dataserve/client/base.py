"""What both clients are built from: the server's URL and httpx's options.

``ClientBase`` turns the constructor's arguments (port or Unix socket, TLS,
token, headers, timeout, pool size, or ``options=ClientOptions(...)`` for the
timeouts, TLS and token) into an ``Exchange`` and the options for an httpx
client, once; each client opens its own kind of httpx client.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx

from ..core.client_options import DEFAULT_CLIENT_OPTIONS, ClientOptions
from ..core.codec import CodecRegistry, default_registry
from ..core.endpoint import exclusive
from ..core.net import is_loopback, loopback_socket_options
from ..core.security import client_ssl_context, token_from_env
from .exchange import Exchange

__all__ = ["DEFAULT_TIMEOUT", "ClientBase", "resolve_options"]

#: Connect quickly or fail; give large payloads and slow handlers time
#: (``ClientOptions``' defaults, as an ``httpx.Timeout``).
DEFAULT_TIMEOUT = httpx.Timeout(**DEFAULT_CLIENT_OPTIONS.timeouts())


def base_url(port: int | str | None, address: str, uds: str | None) -> str:
    if port is None:
        if uds is None:
            raise TypeError("give the server's port, or uds= the path of its Unix socket")
        # Over a Unix socket the URL only names the Host header.
        return address.removesuffix(":")
    # Seed 001: the address ends in a colon and the port is appended.
    return f"{address}{port}"


def resolve_options(
    options: ClientOptions | None,
    timeout: httpx.Timeout | float | None,
    verify: bool,
    ca_file: str | None,
    cert: tuple[str, str] | None,
    token: str | None,
) -> ClientOptions:
    """``options``, or the ``ClientOptions`` the separate keywords say (not both)."""
    if options is not None:
        exclusive(
            "options",
            {
                "timeout": timeout is not DEFAULT_TIMEOUT,
                "verify": verify is not True,
                "ca_file": ca_file is not None,
                "cert": cert is not None,
                "token": token is not None,
            },
        )
        return options
    tls: dict[str, Any] = {"verify": verify, "ca_file": ca_file, "cert": cert, "token": token}
    if isinstance(timeout, httpx.Timeout):
        return ClientOptions(
            connect_timeout=timeout.connect,
            read_timeout=timeout.read,
            write_timeout=timeout.write,
            pool_timeout=timeout.pool,
            **tls,
        )
    return ClientOptions.with_timeout(timeout, **tls)


def client_options(options: ClientOptions, headers: dict[str, str] | None) -> dict[str, Any]:
    """httpx options shared by both clients: TLS, the token, headers, timeout."""
    headers = dict(headers or {})
    token = token_from_env(options.token)
    if token:
        headers["authorization"] = f"Bearer {token}"
    if isinstance(options.tls, ssl.SSLContext):
        context = options.tls
    else:
        context = client_ssl_context(options.verify, options.ca_path, options.cert)
    timeout = httpx.Timeout(**options.timeouts())
    return {"timeout": timeout, "verify": context, "headers": headers}


class ClientBase:
    """What both clients hold: the exchange and httpx's options, built once."""

    def __init__(
        self,
        port: int | str | None = None,
        address: str = "http://localhost:",
        *,
        uds: str | os.PathLike[str] | None = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
        token: str | None = None,
        codecs: CodecRegistry = default_registry,
        headers: dict[str, str] | None = None,
        max_connections: int = 100,
        options: ClientOptions | None = None,
    ) -> None:
        uds_path = os.fspath(uds) if uds is not None else None
        self._exchange = Exchange(base_url(port, address, uds_path), codecs)
        #: The timeouts, TLS settings and token this client uses.
        self.options = resolve_options(options, timeout, verify, ca_file, cert, token)
        httpx_options = client_options(self.options, headers)
        limits = httpx.Limits(max_connections=max_connections)
        # httpx applies verify and limits only to a transport it builds
        # itself; one given to it must be built with them.
        # A server on this machine is reached directly, never through a
        # proxy named in the environment (httpx's own transport would).
        own = {"verify": httpx_options["verify"], "limits": limits}
        transport: dict[str, Any] | None = None
        if uds_path is not None:
            transport = {**own, "uds": uds_path}
        elif is_loopback(httpx.URL(self._exchange.base_url).host):
            transport = {**own, "socket_options": loopback_socket_options()}
        else:
            httpx_options["limits"] = limits
        self._open(httpx_options, transport)

    def _open(self, options: dict[str, Any], transport: dict[str, Any] | None) -> None:
        """Create the httpx client (over a Unix socket when ``transport`` is
        given); the sync and async clients differ here only."""
        raise TypeError("use HTTPDataClient or AsyncHTTPDataClient")

    @property
    def url(self) -> str:
        return self._exchange.base_url
