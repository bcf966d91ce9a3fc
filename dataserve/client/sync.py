"""The blocking client: ``HTTPDataClient``, the calls' bytes moved by iterating."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from .base import ClientBase
from .exchange import translate
from .transfer import ERROR_HEAD, Body, Meter, Pieces, Progress, Writable

__all__ = ["HTTPDataClient"]


def _read_pieces(pieces: Pieces, meter: Meter) -> Iterator[bytes]:
    meter.start()
    while piece := pieces.read():
        yield piece
        meter.add(len(piece))


def _head(chunks: Iterable[bytes]) -> bytes:
    """The first ``ERROR_HEAD`` bytes of an error reply; the rest is never read."""
    head = bytearray()
    for chunk in chunks:
        head += chunk
        if len(head) >= ERROR_HEAD:
            break
    return bytes(head[:ERROR_HEAD])


class HTTPDataClient(ClientBase):
    """Blocking client (seed 001's API): ``send(resource, payload=None)``.

    ``address`` ends in a colon, as in the seed: ``'http://10.0.0.5:'`` (or
    ``'https://...:'``: the server's certificate is verified unless
    ``verify=False`` is given; ``ca_file`` trusts a private CA, ``cert`` is a
    ``(certfile, keyfile)`` pair for mutual TLS). ``uds`` connects over the
    Unix socket at that path instead of TCP (``port`` may then be left out).
    ``token`` (default: ``$DATASERVE_TOKEN``) is sent as ``Authorization:
    Bearer``; ``timeout`` is an ``httpx.Timeout`` or seconds;
    ``max_connections`` bounds the pool. ``options=ClientOptions(...)``
    gives the timeouts, TLS settings and token as one value instead of
    ``timeout``, ``verify``, ``ca_file``, ``cert`` and ``token``. Raises ``dataserve.ResponseError``
    subclasses for error statuses (e.g. ``NotHandled`` for 404) and
    ``TransportError`` subclasses when there is no answer. Use it as a context
    manager, or call ``close()``.
    """

    def _open(self, options: dict[str, Any], transport: dict[str, Any] | None) -> None:
        if transport is not None:
            options = {**options, "transport": httpx.HTTPTransport(**transport)}
        self._client = httpx.Client(**options)

    def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        into: Writable | str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """PUT ``payload`` to ``resource`` and return the decoded answer.

        ``payload`` is a value for the codec (``None`` goes as an empty
        ``text/plain`` body), or a binary file object or ``os.PathLike`` path,
        streamed as ``application/octet-stream`` without reading it whole. With
        ``into`` (a writable binary file, or a path), the reply's body is
        streamed there as the server encoded it and the number of bytes written
        is returned. ``progress(direction, done, total)`` is called as the body
        goes out and as the reply is written.
        """
        request = self._exchange.request(resource, payload, progress)
        with contextlib.closing(request), translate(request.url):
            pieces = request.pieces
            content = request.body if pieces is None else _read_pieces(pieces, request.meter)
            with self._client.stream(
                "PUT", request.url, content=content, headers=request.headers
            ) as response:
                if into is None:
                    body = Body(response)
                    for chunk in response.iter_bytes():
                        body.add(chunk)
                    return self._exchange.reply(response, body.bytes())
                if self._exchange.failed(response):
                    raise self._exchange.error(response, _head(response.iter_bytes()))
                with self._exchange.sink(into, response, progress) as sink:
                    for chunk in response.iter_bytes():
                        if batch := sink.collect(chunk):
                            sink.write(batch)
                    sink.write(sink.rest())
                return sink.written

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HTTPDataClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
