"""HTTP clients on httpx: ``HTTPDataClient`` (blocking) and ``AsyncHTTPDataClient``.

Both keep one connection pool across calls and share everything but the I/O:
``_Exchange`` builds the request and decodes the reply, and
``_translate`` turns httpx's exceptions into the core's exception tree, so the
sync and async clients differ only in ``await``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .core.codec import TEXT, CodecRegistry, default_registry
from .core.errors import (
    ConnectError,
    ConnectionClosed,
    DataServeError,
    DecodeError,
    TimeoutError,
    TransportError,
    error_for_status,
)
from .core.security import client_ssl_context, token_from_env

__all__ = ["DEFAULT_TIMEOUT", "AsyncHTTPDataClient", "HTTPDataClient"]

#: Connect quickly or fail; give large payloads and slow handlers time.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=30.0)

# Bodies above this go out in pieces of this size. httpcore's blocking writer
# re-slices what the socket did not take yet (``buffer = buffer[n:]``), a copy
# of the rest each time: quadratic in the body (512 MiB took half a minute).
# Pieces bound each copy; the Content-Length header keeps the framing plain.
_PIECE = 1 << 20


def _pieces(body: bytes) -> Iterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(view), _PIECE):
        yield bytes(view[start : start + _PIECE])  # the one copy: h11 passes bytes on as they are


async def _apieces(body: bytes) -> AsyncIterator[bytes]:
    for piece in _pieces(body):
        yield piece


class _Exchange:
    """The I/O-free half of a call: request building and reply decoding."""

    def __init__(self, base_url: str, codecs: CodecRegistry) -> None:
        self.base_url = base_url
        self.codecs = codecs

    def url(self, resource: str) -> str:
        if not resource.startswith("/"):
            resource = "/" + resource
        return self.base_url + resource

    def request(self, resource: str, payload: Any) -> tuple[str, dict[str, str], bytes]:
        media_type: str | None
        if payload is None:
            # dataserve 0.1's server answers 400 to a PUT without Content-Type,
            # and its client sends None as an empty text/plain body: so do we.
            # A handler then gets '' (from either server), as in 0.1.
            media_type, body = TEXT, b""
        else:
            media_type, body = self.codecs.encode(payload)
        headers = {"content-type": media_type} if media_type else {}
        if len(body) > _PIECE:  # sent in pieces (_pieces), so say the length up front
            headers["content-length"] = str(len(body))
        return self.url(resource), headers, body

    def reply(self, response: httpx.Response) -> Any:
        status = response.status_code
        if not 200 <= status < 300:
            message = response.text.strip() or response.reason_phrase
            raise error_for_status(status, message)
        content_type = response.headers.get("content-type")
        try:
            return self.codecs.decode(content_type, response.content)
        except DataServeError as exc:
            raise DecodeError(
                f"undecodable reply from {response.request.url}: {exc.message}"
            ) from exc


@contextlib.contextmanager
def _translate(url: str) -> Iterator[None]:
    """httpx's exceptions -> the core's, raised from the original."""
    try:
        yield
    except httpx.ConnectError as exc:
        raise ConnectError(f"cannot connect to {url}: {exc or 'connection refused'}") from exc
    except httpx.TimeoutException as exc:
        raise TimeoutError(f"no answer from {url} in time ({type(exc).__name__})") from exc
    except httpx.RemoteProtocolError as exc:
        raise ConnectionClosed(f"the server at {url} broke the exchange: {exc}") from exc
    except httpx.TransportError as exc:
        raise TransportError(f"request to {url} failed: {exc}") from exc


def _base_url(port: int | str, address: str) -> str:
    # Seed 001: the address ends in a colon and the port is appended.
    return f"{address}{port}"


def _client_options(
    timeout: httpx.Timeout | float | None,
    verify: bool,
    ca_file: str | None,
    cert: tuple[str, str] | None,
    token: str | None,
    headers: dict[str, str] | None,
) -> dict[str, Any]:
    """httpx options shared by both clients: TLS, the token, headers, timeout."""
    headers = dict(headers or {})
    token = token_from_env(token)
    if token:
        headers["authorization"] = f"Bearer {token}"
    context = client_ssl_context(verify, ca_file, cert)
    return {"timeout": timeout, "verify": context, "headers": headers}


class _ClientBase:
    """What both clients hold: the exchange and httpx's options, built once."""

    def __init__(
        self,
        port: int | str,
        address: str = "http://localhost:",
        *,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
        token: str | None = None,
        codecs: CodecRegistry = default_registry,
        headers: dict[str, str] | None = None,
        max_connections: int = 100,
    ) -> None:
        self._exchange = _Exchange(_base_url(port, address), codecs)
        options = _client_options(timeout, verify, ca_file, cert, token, headers)
        options["limits"] = httpx.Limits(max_connections=max_connections)
        self._open(options)

    def _open(self, options: dict[str, Any]) -> None:
        """Create the httpx client; the sync and async clients differ here only."""
        raise TypeError("use HTTPDataClient or AsyncHTTPDataClient")

    @property
    def url(self) -> str:
        return self._exchange.base_url


class HTTPDataClient(_ClientBase):
    """Blocking client (seed 001's API): ``send(resource, payload=None)``.

    ``address`` ends in a colon, as in the seed: ``'http://10.0.0.5:'`` (or
    ``'https://...:'``: the server's certificate is verified unless
    ``verify=False`` is given; ``ca_file`` trusts a private CA, ``cert`` is a
    ``(certfile, keyfile)`` pair for mutual TLS). ``token`` (default:
    ``$DATASERVE_TOKEN``) is sent as ``Authorization: Bearer``; ``timeout``
    is an ``httpx.Timeout`` or seconds; ``max_connections`` bounds the pool.
    Raises ``dataserve.ResponseError`` subclasses for error statuses (e.g.
    ``NotHandled`` for 404) and ``TransportError`` subclasses when there is no
    answer. Use it as a context manager, or call ``close()``.
    """

    def _open(self, options: dict[str, Any]) -> None:
        self._client = httpx.Client(**options)

    def send(self, resource: str, payload: Any = None) -> Any:
        """PUT ``payload`` to ``resource`` and return the decoded answer."""
        url, headers, body = self._exchange.request(resource, payload)
        with _translate(url):
            content = body if len(body) <= _PIECE else _pieces(body)
            response = self._client.put(url, content=content, headers=headers)
        return self._exchange.reply(response)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HTTPDataClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncHTTPDataClient(_ClientBase):
    """The asyncio twin of ``HTTPDataClient``: ``await client.send(...)``,
    the same options."""

    def _open(self, options: dict[str, Any]) -> None:
        self._client = httpx.AsyncClient(**options)

    async def send(self, resource: str, payload: Any = None) -> Any:
        """PUT ``payload`` to ``resource`` and return the decoded answer."""
        url, headers, body = self._exchange.request(resource, payload)
        with _translate(url):
            content = body if len(body) <= _PIECE else _apieces(body)
            response = await self._client.put(url, content=content, headers=headers)
        return self._exchange.reply(response)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncHTTPDataClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
