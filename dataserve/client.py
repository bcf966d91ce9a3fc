"""HTTP clients on httpx: ``HTTPDataClient`` (blocking) and ``AsyncHTTPDataClient``.

Both keep one connection pool across calls and share everything but the I/O.
``_Exchange`` builds the request (payload -> headers and a body, or a file to
stream) and decides what a reply means (status -> exception, media type ->
value); ``_Meter`` counts bytes for a progress callback; ``_Sink`` is where a
reply streamed ``into`` a file goes; ``_translate`` turns httpx's exceptions
into the core's exception tree. The two clients differ only where bytes move:
iterating, ``await``, and (in the async client) file reads and writes done off
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Literal, NamedTuple, Protocol

import httpx

from .core.buffers import BodyBuffer
from .core.codec import BYTES, TEXT, CodecRegistry, default_registry
from .core.errors import (
    ConnectError,
    ConnectionClosed,
    DataServeError,
    DecodeError,
    ResponseError,
    TimeoutError,
    TransportError,
    error_for_status,
)
from .core.security import client_ssl_context, token_from_env

__all__ = ["DEFAULT_TIMEOUT", "AsyncHTTPDataClient", "HTTPDataClient", "Progress", "Writable"]

#: Connect quickly or fail; give large payloads and slow handlers time.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=30.0)

#: ``progress(direction, done, total)``: ``direction`` is ``'send'`` for the
#: request body and ``'receive'`` for a reply written ``into`` a file; ``done``
#: counts bytes so far; ``total`` is ``None`` when the length is not known.
Progress = Callable[[Literal["send", "receive"], int, int | None], None]


class Writable(Protocol):
    """What ``send(..., into=...)`` writes to: a binary file, a socket file, a BytesIO."""

    def write(self, data: bytes, /) -> object: ...


# Bodies above this go out in pieces of this size, and files are read in
# pieces of this size. httpcore's blocking writer re-slices what the socket did
# not take yet (``buffer = buffer[n:]``), a copy of the rest each time:
# quadratic in the body (512 MiB took half a minute). Pieces bound each copy
# and the memory a streamed file costs; a Content-Length header, when the size
# is known, keeps the framing plain.
_PIECE = 1 << 20

# An error reply read while streaming is kept only this far: its message is a
# line or two, and a proxy's error page must not cost what the reply would.
_ERROR_HEAD = 64 << 10


class _Pieces:
    """A request body sent in pieces of ``_PIECE``: bytes sliced here."""

    #: A read may wait for a disk or a pipe: the async client reads in a thread.
    blocking = False

    def __init__(self, body: bytes) -> None:
        self.size: int | None = len(body)
        self._view = memoryview(body)
        self._at = 0

    def read(self) -> bytes:
        piece = bytes(self._view[self._at : self._at + _PIECE])  # the one copy: h11 keeps bytes
        self._at += len(piece)
        return piece

    def close(self) -> None:
        pass


class _FilePieces(_Pieces):
    """A file payload, read in pieces as it goes out; ``size`` is what is left
    to send, if known. A path is opened here and closed by ``close()``."""

    blocking = True

    def __init__(self, payload: Any) -> None:
        if isinstance(payload, os.PathLike):
            self.file: Any = open(payload, "rb")  # noqa: SIM115 - closed by close()
            self.owned = True
        else:
            if isinstance(payload, io.TextIOBase):
                raise TypeError("a file payload must be opened in binary mode ('rb')")
            self.file = payload
            self.owned = False
        self.size = _remaining(self.file)

    def read(self) -> bytes:
        piece = self.file.read(_PIECE)
        if not isinstance(piece, bytes):
            if not isinstance(piece, (bytearray, memoryview)):
                raise TypeError(f"a file payload's read() returned {type(piece).__name__}")
            piece = bytes(piece)
        return piece

    def close(self) -> None:
        if self.owned:
            self.file.close()


def _remaining(file: Any) -> int | None:
    """Bytes left from the file's position to its end, or None when unknowable
    (a pipe, a socket, a device, a stream that cannot seek): sent chunked."""
    try:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
    except (AttributeError, OSError, ValueError):
        pass  # no descriptor (BytesIO and the like): ask the stream itself
    try:
        if not file.seekable():
            return None
        here = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return max(int(end) - int(here), 0)


def _is_file(payload: Any) -> bool:
    # A str is always text, never a path: seed 001 sends str as text/plain.
    return isinstance(payload, os.PathLike) or (
        not isinstance(payload, (str, bytes, bytearray, memoryview)) and hasattr(payload, "read")
    )


class _Request(NamedTuple):
    """What to PUT: a small body whole, or ``pieces`` to stream with their meter."""

    url: str
    headers: dict[str, str]
    body: bytes
    pieces: _Pieces | None
    meter: _Meter

    def close(self) -> None:
        if self.pieces is not None:
            self.pieces.close()


class _Meter:
    """Counts the bytes of one direction and reports them to ``progress``."""

    __slots__ = ("direction", "done", "progress", "total")

    def __init__(
        self, progress: Progress | None, direction: Literal["send", "receive"], total: int | None
    ) -> None:
        self.progress = progress
        self.direction: Literal["send", "receive"] = direction
        self.total = total
        self.done = 0

    def start(self) -> None:
        if self.progress is not None:
            self.progress(self.direction, 0, self.total)

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.direction, self.done, self.total)


class _Sink:
    """Where a reply streamed ``into=`` goes.

    A path is opened only once the reply is known to be a success, so an error
    never truncates an existing file; a file this sink created is removed if
    the transfer fails half-way, so a partial reply is never taken for a
    whole one. A file object is written as given and left open.

    Network reads arrive in pieces of 64 KiB or so; ``collect`` batches them
    to about ``_PIECE`` so the async client hops to a thread once per MiB.
    """

    def __init__(self, into: Writable | str | os.PathLike[str], meter: _Meter) -> None:
        self.path = into if isinstance(into, (str, os.PathLike)) else None
        self.file: Any = None if self.path is not None else into
        self.meter = meter
        self.created = False
        self._batch: list[bytes] = []
        self._batched = 0

    @property
    def written(self) -> int:
        return self.meter.done

    def __enter__(self) -> _Sink:
        if self.path is not None:
            self.created = not os.path.exists(self.path)
            self.file = open(self.path, "wb")
        self.meter.start()
        return self

    def collect(self, chunk: bytes) -> list[bytes] | None:
        """Add a chunk; a batch to ``write`` once there is a piece's worth."""
        self._batch.append(chunk)
        self._batched += len(chunk)
        return self.rest() if self._batched >= _PIECE else None

    def rest(self) -> list[bytes]:
        batch, self._batch, self._batched = self._batch, [], 0
        return batch

    def write(self, batch: list[bytes]) -> None:
        for chunk in batch:
            self.file.write(chunk)
            self.meter.add(len(chunk))

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.path is not None:
            self.file.close()
            if exc_type is not None and self.created:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


class _Body:
    """A whole reply's body, gathered as it arrives.

    A large one whose length is announced (and not content-encoded, so the
    decoded bytes are that long) is copied into one buffer of that size as
    each network read comes in; joining a thousand 64 KiB reads at the end
    instead cost a second copy into freshly faulted memory, half of a
    64 MiB round trip. Anything else is joined, as httpx would.
    """

    __slots__ = ("_buffer", "_chunks")

    def __init__(self, response: httpx.Response) -> None:
        length = _content_length(response)
        coding = response.headers.get("content-encoding", "identity").strip().lower()
        large = length is not None and length >= _PIECE and coding in ("", "identity")
        self._buffer = BodyBuffer(length) if large and length is not None else None
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        buffer = self._buffer
        if buffer is None or buffer.write(chunk) < len(chunk):
            # httpx checks the length the reply announced: this never runs over
            self._chunks.append(chunk)

    def bytes(self) -> bytes:
        buffer = self._buffer
        if buffer is None:
            return b"".join(self._chunks)
        self._buffer = None
        if not buffer.complete:  # cut short: the transport raises before this
            buffer.discard()
            raise ConnectionClosed("the reply ended before its announced length")
        return buffer.finish()


class _Exchange:
    """The I/O-free half of a call: request building and reply decisions."""

    def __init__(self, base_url: str, codecs: CodecRegistry) -> None:
        self.base_url = base_url
        self.codecs = codecs

    def url(self, resource: str) -> str:
        if not resource.startswith("/"):
            resource = "/" + resource
        return self.base_url + resource

    def request(self, resource: str, payload: Any, progress: Progress | None) -> _Request:
        url = self.url(resource)
        if _is_file(payload):
            pieces: _Pieces = _FilePieces(payload)
            headers = {"content-type": BYTES}
            if pieces.size is not None:  # else httpx sends it chunked
                headers["content-length"] = str(pieces.size)
            return _Request(url, headers, b"", pieces, _Meter(progress, "send", pieces.size))
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
        meter = _Meter(progress, "send", len(body))
        if len(body) <= _PIECE and progress is None:
            return _Request(url, headers, body, None, meter)
        return _Request(url, headers, b"", _Pieces(body), meter)

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
    ) -> _Sink:
        return _Sink(into, _Meter(progress, "receive", _content_length(response)))


def _read_pieces(pieces: _Pieces, meter: _Meter) -> Iterator[bytes]:
    meter.start()
    while piece := pieces.read():
        yield piece
        meter.add(len(piece))


async def _aread_pieces(pieces: _Pieces, meter: _Meter) -> AsyncIterator[bytes]:
    meter.start()
    while piece := (await asyncio.to_thread(pieces.read) if pieces.blocking else pieces.read()):
        yield piece
        meter.add(len(piece))


def _head(chunks: Iterable[bytes]) -> bytes:
    """The first ``_ERROR_HEAD`` bytes of an error reply; the rest is never read."""
    head = bytearray()
    for chunk in chunks:
        head += chunk
        if len(head) >= _ERROR_HEAD:
            break
    return bytes(head[:_ERROR_HEAD])


async def _ahead(chunks: AsyncIterator[bytes]) -> bytes:
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= _ERROR_HEAD:
            break
    return bytes(head[:_ERROR_HEAD])


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
    except (httpx.ReadError, httpx.WriteError) as exc:
        # the connection was reset or broken under the exchange
        raise ConnectionClosed(f"the connection to {url} broke: {exc}") from exc
    except httpx.TransportError as exc:
        raise TransportError(f"request to {url} failed: {exc}") from exc


def _base_url(port: int | str | None, address: str, uds: str | None) -> str:
    if port is None:
        if uds is None:
            raise TypeError("give the server's port, or uds= the path of its Unix socket")
        # Over a Unix socket the URL only names the Host header.
        return address.removesuffix(":")
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
    ) -> None:
        uds_path = os.fspath(uds) if uds is not None else None
        self._exchange = _Exchange(_base_url(port, address, uds_path), codecs)
        options = _client_options(timeout, verify, ca_file, cert, token, headers)
        limits = httpx.Limits(max_connections=max_connections)
        transport: dict[str, Any] | None = None
        if uds_path is None:
            options["limits"] = limits
        else:
            # httpx applies verify and limits only to a transport it builds
            # itself; one given to it must be built with them.
            transport = {"uds": uds_path, "verify": options["verify"], "limits": limits}
        self._open(options, transport)

    def _open(self, options: dict[str, Any], transport: dict[str, Any] | None) -> None:
        """Create the httpx client (over a Unix socket when ``transport`` is
        given); the sync and async clients differ here only."""
        raise TypeError("use HTTPDataClient or AsyncHTTPDataClient")

    @property
    def url(self) -> str:
        return self._exchange.base_url


class HTTPDataClient(_ClientBase):
    """Blocking client (seed 001's API): ``send(resource, payload=None)``.

    ``address`` ends in a colon, as in the seed: ``'http://10.0.0.5:'`` (or
    ``'https://...:'``: the server's certificate is verified unless
    ``verify=False`` is given; ``ca_file`` trusts a private CA, ``cert`` is a
    ``(certfile, keyfile)`` pair for mutual TLS). ``uds`` connects over the
    Unix socket at that path instead of TCP (``port`` may then be left out).
    ``token`` (default: ``$DATASERVE_TOKEN``) is sent as ``Authorization:
    Bearer``; ``timeout`` is an ``httpx.Timeout`` or seconds;
    ``max_connections`` bounds the pool. Raises ``dataserve.ResponseError``
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
        with contextlib.closing(request), _translate(request.url):
            pieces = request.pieces
            content = request.body if pieces is None else _read_pieces(pieces, request.meter)
            with self._client.stream(
                "PUT", request.url, content=content, headers=request.headers
            ) as response:
                if into is None:
                    body = _Body(response)
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


class AsyncHTTPDataClient(_ClientBase):
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
        with contextlib.closing(request), _translate(request.url):
            pieces = request.pieces
            content = request.body if pieces is None else _aread_pieces(pieces, request.meter)
            async with self._client.stream(
                "PUT", request.url, content=content, headers=request.headers
            ) as response:
                if into is None:
                    body = _Body(response)
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
