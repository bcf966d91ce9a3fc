"""Reading a data request for the endpoint: how to decode its body, and the body, within the limits.

``RequestReader`` gives ``DataEndpoint`` (``dataserve.http.app``) what the
handler's call needs from a request, or refuses it (``Reject``, answered
with the status and message; every refusal of a body closes the
connection, since its unread bytes cannot be taken as the next request):

* its ``Content-Type``: the decoder for it, bound to the limits (415 when
  no codec takes it; without one, a body is octet-stream and no body is
  ``None``, RFC 9110 8.3);
* its ``Content-Length`` against ``max_body_size``: 413 at once, the body
  never read;
* its body: whole, from this server's ``dataserve.whole_body`` extension
  (``dataserve.http.cycle``), or in pieces from ``receive()`` (behind
  middleware, or on another server), within ``max_body_size`` (413) and with
  nothing received for ``body_timeout`` at most (408).

A client that goes away before its body is in raises ``Disconnected``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..core.codec import Codec, CodecRegistry, parse_media_type
from ..core.deadlines import Watchdogs, resolution_for
from ..core.errors import CodecError
from ..core.exchange import Decode
from ..core.limits import Limits
from .cycle import WHOLE_BODY

__all__ = ["Disconnected", "Reject", "RequestReader"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class Disconnected(Exception):
    """The client went away before its request was complete."""

    def __init__(self, received: int) -> None:
        self.received = received


class Reject(Exception):
    """The request is refused: answer ``status`` with ``message``."""

    def __init__(
        self,
        status: int,
        message: str,
        close: bool = False,
        received: int = 0,
        retry: bool = False,
    ) -> None:
        self.status, self.message, self.close = status, message, close
        self.received = received  # body bytes read before the refusal
        self.retry = retry  # never reached the handler: safe to send again


class RequestReader:
    """A data request's decoder and body, read within ``limits``."""

    def __init__(self, limits: Limits, codecs: CodecRegistry) -> None:
        self.limits = limits
        #: Bound to the limits already (``CodecRegistry.with_limits``).
        self.codecs = codecs
        self._decoders: dict[bytes | None, Decode] = {}
        # Body deadlines when the server cannot take a body whole (not ours):
        # one timer per loop sweeps them, at most a quarter timeout late.
        self._watchdogs = Watchdogs(resolution_for(limits.body_timeout))

    def check(self, scope: Scope) -> Decode:
        """The decoder for the request's body, once its headers pass the limits.

        The body is then read by ``whole`` (this server) or ``pieces``."""
        content_type: bytes | None = None
        length: int | None = None
        # Host and framing checks happen in the protocol (dataserve.http.head)
        try:
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value
                elif name == b"content-length":
                    length = int(value)  # uvicorn's parsers have validated it already
        except ValueError:
            raise Reject(400, "Content-Length is not a number", close=True) from None
        limit = self.limits.max_body_size
        if length is not None and length > limit:
            # Decided from the header alone: the body is never read, and the
            # connection closes so the unread bytes cannot be taken as a request.
            raise Reject(
                413,
                f"request body of {length} bytes is over the limit of {limit} bytes",
                close=True,
            )
        return self.decoder_for(content_type)

    def decoder_for(self, content_type: bytes | None) -> Decode:
        decode = self._decoders.get(content_type)
        if decode is not None:
            return decode
        if not content_type:
            # No Content-Type: no body means None, a body is octet-stream (RFC 9110 8.3).
            decode = _bytes_or_none
        else:
            media_type, params = parse_media_type(content_type)
            try:
                codec = self.codecs.for_media_type(media_type)
            except CodecError as exc:
                raise Reject(exc.status, exc.message) from None
            decode = functools.partial(_decode_with, codec, params)
        if len(self._decoders) < 256:  # bounded: clients choose these strings
            self._decoders[content_type] = decode
        return decode

    async def whole(self, scope: Scope) -> bytes:
        """The body, read by the protocol into one buffer (``dataserve.http.body``)."""
        read = scope["extensions"][WHOLE_BODY]["read"]
        message = await read(self.limits.max_body_size, self.limits.body_timeout)
        kind = message["type"]
        if kind == "http.request":
            body: bytes = message["body"]
            return body
        received = message.get("received", 0)
        if kind == "dataserve.body_too_large":
            raise self._too_large(received)
        if kind == "dataserve.body_stalled":
            raise self._stalled(received)
        raise Disconnected(received)

    async def pieces(self, receive: Receive) -> bytes:
        """The body in pieces, from a server that cannot take it whole (plain uvicorn)."""
        limit = self.limits.max_body_size
        chunks: list[bytes] = []
        size = 0
        more = True
        deadline = self._watchdogs.get().start(self.limits.body_timeout)
        try:
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Disconnected(size)
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise self._too_large(size)
                    chunks.append(chunk)
                    # an idle deadline: each chunk that arrives restarts it
                    deadline.restart(self.limits.body_timeout)
        except asyncio.CancelledError:
            if not deadline.owns():
                raise  # cancelled by someone else (shutdown): not a timeout
            raise self._stalled(size) from None
        finally:
            deadline.stop()
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def _too_large(self, received: int) -> Reject:
        return Reject(
            413,
            f"request body is over the limit of {self.limits.max_body_size} bytes",
            close=True,
            received=received,
        )

    def _stalled(self, received: int) -> Reject:
        return Reject(
            408,
            f"request body stalled: nothing received for {self.limits.body_timeout:g} s",
            close=True,
            received=received,
        )


def _bytes_or_none(body: bytes) -> Any:
    return body or None


def _decode_with(codec: Codec, params: dict[str, str], body: bytes) -> Any:
    return codec.decode(body, params)
