"""The I/O-free half of a call, shared by both clients.

``Exchange`` builds the request (a payload -> headers and a body, or pieces
to stream) and decides what a reply means (an error status -> its
exception, a media type -> the decoded value); ``translate`` turns httpx's
exceptions into the core's exception tree. Neither sends or reads a byte.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx

from ..core.codec import BYTES, TEXT, CodecRegistry
from ..core.errors import (
    ConnectError,
    ConnectionClosed,
    DataServeError,
    DecodeError,
    ResponseError,
    TimeoutError,
    TransportError,
    error_for_status,
)
from .transfer import (
    PIECE,
    FilePieces,
    Meter,
    Pieces,
    Progress,
    Sink,
    Writable,
    content_length,
    is_file,
)

__all__ = ["Exchange", "Request", "translate"]


class Request(NamedTuple):
    """What to PUT: a small body whole, or ``pieces`` to stream with their meter."""

    url: str
    headers: dict[str, str]
    body: bytes
    pieces: Pieces | None
    meter: Meter

    def close(self) -> None:
        if self.pieces is not None:
            self.pieces.close()


class Exchange:
    """The I/O-free half of a call: request building and reply decisions."""

    def __init__(self, base_url: str, codecs: CodecRegistry) -> None:
        self.base_url = base_url
        self.codecs = codecs

    def url(self, resource: str) -> str:
        if not resource.startswith("/"):
            resource = "/" + resource
        return self.base_url + resource

    def request(self, resource: str, payload: Any, progress: Progress | None) -> Request:
        url = self.url(resource)
        if is_file(payload):
            pieces: Pieces = FilePieces(payload)
            headers = {"content-type": BYTES}
            if pieces.size is not None:  # else httpx sends it chunked
                headers["content-length"] = str(pieces.size)
            return Request(url, headers, b"", pieces, Meter(progress, "send", pieces.size))
        if payload is None:
            # dataserve 0.1's server answers 400 to a PUT without Content-Type,
            # and its client sends None as an empty text/plain body: so do we.
            # A handler then gets '' (from either server), as in 0.1.
            media_type: str | None
            media_type, body = TEXT, b""
        else:
            media_type, body = self.codecs.encode(payload)
        headers = {"content-type": media_type} if media_type else {}
        # Said up front, for a body in pieces is otherwise sent chunked.
        headers["content-length"] = str(len(body))
        meter = Meter(progress, "send", len(body))
        if len(body) <= PIECE and progress is None:
            return Request(url, headers, body, None, meter)
        return Request(url, headers, b"", Pieces(body), meter)

    def failed(self, response: httpx.Response) -> bool:
        return not 200 <= response.status_code < 300

    def error(self, response: httpx.Response, body: bytes) -> ResponseError:
        """The exception for an error status; ``body`` (or its head) holds the message."""
        message = body.decode("utf-8", "replace").strip() or response.reason_phrase
        return error_for_status(response.status_code, message)

    def reply(self, response: httpx.Response, body: bytes) -> Any:
        """A whole reply and its ``body`` -> the decoded value, or the
        exception for its status."""
        if self.failed(response):
            raise self.error(response, body)
        content_type = response.headers.get("content-type")
        try:
            return self.codecs.decode(content_type, body)
        except DataServeError as exc:
            raise DecodeError(
                f"undecodable reply from {response.request.url}: {exc.message}"
            ) from exc

    def sink(
        self,
        into: Writable | str | os.PathLike[str],
        response: httpx.Response,
        progress: Progress | None,
    ) -> Sink:
        return Sink(into, Meter(progress, "receive", content_length(response)))


@contextlib.contextmanager
def translate(url: str) -> Iterator[None]:
    """httpx's exceptions -> the core's, raised from the original."""
    try:
        yield
    except httpx.ConnectError as exc:
        raise ConnectError(f"cannot connect to {url}: {exc or 'connection refused'}") from exc
    except httpx.TimeoutException as exc:
        raise TimeoutError(f"no answer from {url} in time ({type(exc).__name__})") from exc
    except httpx.RemoteProtocolError as exc:
        raise ConnectionClosed(f"the server at {url} broke the exchange: {exc}") from exc
    except (httpx.ReadError, httpx.WriteError) as exc:
        # the connection was reset or broken under the exchange
        raise ConnectionClosed(f"the connection to {url} broke: {exc}") from exc
    except httpx.TransportError as exc:
        raise TransportError(f"request to {url} failed: {exc}") from exc
