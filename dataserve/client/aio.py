"""The asyncio client: ``AsyncHTTPDataClient``, the calls' bytes moved with
``await``, and file reads and writes done in a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .base import ClientBase
from .exchange import translate
from .transfer import ERROR_HEAD, Body, Meter, Pieces, Progress, Writable

__all__ = ["AsyncHTTPDataClient"]


async def _aread_pieces(pieces: Pieces, meter: Meter) -> AsyncIterator[bytes]:
    meter.start()
    while piece := (await asyncio.to_thread(pieces.read) if pieces.blocking else pieces.read()):
        yield piece
        meter.add(len(piece))


async def _ahead(chunks: AsyncIterator[bytes]) -> bytes:
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= ERROR_HEAD:
            break
    return bytes(head[:ERROR_HEAD])


class AsyncHTTPDataClient(ClientBase):
    """The asyncio twin of ``HTTPDataClient``: ``await client.send(...)``,
    the same options. File reads and writes run in a worker thread, so a slow
    disk never stalls the event loop."""

    def _open(self, options: dict[str, Any], transport: dict[str, Any] | None) -> None:
        if transport is not None:
            options = {**options, "transport": httpx.AsyncHTTPTransport(**transport)}
        self._client = httpx.AsyncClient(**options)

    async def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        into: Writable | str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """PUT ``payload`` to ``resource`` and return the decoded answer;
        ``into`` and ``progress`` as in ``HTTPDataClient.send``."""
        request = self._exchange.request(resource, payload, progress)
        with contextlib.closing(request), translate(request.url):
            pieces = request.pieces
            content = request.body if pieces is None else _aread_pieces(pieces, request.meter)
            async with self._client.stream(
                "PUT", request.url, content=content, headers=request.headers
            ) as response:
                if into is None:
                    body = Body(response)
                    async for chunk in response.aiter_bytes():
                        body.add(chunk)
                    return self._exchange.reply(response, body.bytes())
                if self._exchange.failed(response):
                    raise self._exchange.error(response, await _ahead(response.aiter_bytes()))
                with self._exchange.sink(into, response, progress) as sink:
                    async for chunk in response.aiter_bytes():
                        if batch := sink.collect(chunk):
                            await asyncio.to_thread(sink.write, batch)
                    await asyncio.to_thread(sink.write, sink.rest())
                return sink.written

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncHTTPDataClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
