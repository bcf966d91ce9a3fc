"""``AsyncRawDataClient``: the native framing from asyncio, pipelined on one connection.

It runs a ``Session`` on the engine (``rawproto.engine.open_connection``), so
it reads as the server does: a large answer goes straight into one buffer of
its size (``Session.payload_sink``), and a payload leaves as the object given,
after its frame header, never joined to it. ``send(..., into=...)`` streams
an answer into a file: the engine reads it into pieces that a worker thread
writes, and reading pauses while the disk is behind, so memory stays at a few
pieces whatever the answer's size. File payloads are read in a worker thread
too: a slow disk never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from dataserve.core.buffers import BodyBuffer
from dataserve.core.errors import ConnectError, ConnectionClosed, RemoteProtocolError, TimeoutError
from dataserve.core.limits import DEFAULT_LIMITS

from ..engine import Connection, Session, open_connection
from ..engine.session import PayloadSink
from ..proto.native import Error, NativeConnection, Reply
from .exchange import ClientSettings, Exchange
from .files import PIECE, Meter, Progress, Source, Target, Writable, is_file

__all__ = ["AsyncRawDataClient"]

_WHAT = "rawproto server"


class _FileSink:
    """An answer's payload on its way into a file (a ``PayloadSink`` for the engine).

    The connection reads into one piece at a time; a full piece goes to a
    worker thread to be written, and the next is filled meanwhile. With one
    piece being written and the next full, reading pauses until the disk
    catches up. ``written`` completes once every byte is in the file.
    """

    def __init__(self, target: Target, size: int, session: _ClientSession) -> None:
        self._target = target
        self._session = session
        self._left = size
        self._fill = bytearray(min(PIECE, size))
        self._filled = 0
        self._writing: asyncio.Future[Any] | None = None
        self._queued: memoryview | None = None
        self.written: asyncio.Future[None] = session.conn.loop.create_future()
        target.open(size)

    def remaining(self) -> memoryview:
        end = min(len(self._fill), self._filled + self._left)
        return memoryview(self._fill)[self._filled : end]

    def advance(self, n: int) -> None:
        self._filled += n
        self._left -= n
        if self._filled == len(self._fill) or not self._left:
            piece = memoryview(self._fill)[: self._filled]
            if self._left:
                self._fill = bytearray(min(PIECE, self._left))
            self._filled = 0
            if self._writing is None:
                self._write(piece)
            else:
                self._queued = piece
                self._session.hold(True)  # the disk is behind: read no further for now

    @property
    def complete(self) -> bool:
        return not self._left

    def finish(self) -> None:
        return None  # the bytes are in the file (or on their way there)

    def discard(self) -> None:
        if not self.written.done():
            self.written.set_exception(self._session.exchange.closed())

    def _write(self, piece: memoryview) -> None:
        loop = self._session.conn.loop
        self._writing = loop.run_in_executor(None, self._target.write, piece)
        self._writing.add_done_callback(self._done_writing)

    def _done_writing(self, job: asyncio.Future[Any]) -> None:
        self._writing = None
        if self.written.done():
            return
        exc = job.exception()
        if exc is not None:
            self.written.set_exception(exc)
            self._session.conn.abort()  # the answer cannot be kept: stop receiving it
            return
        queued, self._queued = self._queued, None
        if queued is not None:
            self._write(queued)
            self._session.hold(False)
        elif not self._left:
            self.written.set_result(None)


class _ClientSession(Session):
    """The asyncio client's side of a connection: answers resolve their futures."""

    concurrent = True

    def __init__(self, conn: Connection, exchange: Exchange) -> None:
        super().__init__(conn, exchange.proto)
        self.exchange = exchange
        self.pending: dict[int, asyncio.Future[Reply | Error]] = {}
        #: Answers to stream into files, by request id; their sinks once started.
        self.targets: dict[int, Target] = {}
        self.sinks: dict[int, _FileSink] = {}
        #: Why the server closed the connection (an ERROR with id 0), if it said.
        self.error: Exception | None = None
        self._held = 0

    def opened(self) -> None:
        self.conn.write(self.exchange.opening())

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    @property
    def hold_reading(self) -> bool:
        return self._held > 0

    def hold(self, on: bool) -> None:
        self._held += 1 if on else -1
        self.conn.update_flow()

    def payload_sink(self, size: int) -> PayloadSink | None:
        assert isinstance(self.proto, NativeConnection)
        rid = self.proto.payload_request_id
        target = self.targets.get(rid)
        if target is None:
            return BodyBuffer(size)
        sink = self.sinks[rid] = _FileSink(target, size, self)
        return sink

    def handle(self, event: object) -> None:
        if isinstance(event, (Reply, Error)):
            if event.request_id == 0 and isinstance(event, Error):
                self.error = self.exchange.connection_error(event)
                self._fail_all(self.error)
                self.conn.close()
                return
            future = self.pending.pop(event.request_id, None)
            if future is not None and not future.done():
                future.set_result(event)
            if self.exchange.ends_connection(event):
                self.conn.close()  # as the server does: later requests reconnect

    def failed(self, exc: RemoteProtocolError) -> None:
        self._fail_all(
            ConnectionClosed(
                f"the server at {self.exchange.address} broke the native protocol: {exc.message}"
            )
        )
        self.conn.close()

    def closed(self, exc: BaseException | None) -> None:
        self._fail_all(self.exchange.closed())

    def _fail_all(self, error: Exception) -> None:
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)


class AsyncRawDataClient(ClientSettings):
    """asyncio native-framing client that pipelines on one connection.

    ``await client.send(resource, payload=None)`` may be called by many tasks
    at once: the requests share the connection and each answer finds its
    caller by request id. The connection opens on first use and reopens after
    the server closed it. ``uds``, ``token``, ``tls``, ``verify``,
    ``ca_file``, ``cert``, ``options``: see ``rawproto.native.client``.
    ``async with`` or ``await aclose()``.
    """

    def _init_state(self) -> None:
        self._session: _ClientSession | None = None
        self._lock: asyncio.Lock | None = None

    async def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        into: Writable | str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """Send ``payload`` to ``resource`` and return the decoded answer; a file
        payload, ``into`` and ``progress`` as in ``RawDataClient.send``."""
        source = await asyncio.to_thread(Source, payload) if is_file(payload) else None
        target = Target(into, progress) if into is not None else None
        failed = True
        try:
            exchange, answer = await self._call(resource, payload, source, target, progress)
            failed = type(answer) is not Reply
        finally:
            if source is not None:
                await asyncio.to_thread(source.close)
            if target is not None:
                await asyncio.to_thread(target.close, failed)
        if target is not None and type(answer) is Reply:
            return target.written
        return exchange.outcome(answer)

    async def _call(
        self,
        resource: str,
        payload: Any,
        source: Source | None,
        target: Target | None,
        progress: Progress | None,
    ) -> tuple[Exchange, Reply | Error]:
        session = await self._connection()
        exchange, conn = session.exchange, session.conn
        if source is not None:
            request_id, head = exchange.request_head(resource, exchange.bytes_tag, source.size)
            body: Any = source
        else:
            request_id, head, body = exchange.request_parts(resource, payload)
        future: asyncio.Future[Reply | Error] = conn.loop.create_future()
        if conn.is_closed:
            # Closed while connecting: by a refused token, say.
            raise session.error or exchange.closed()
        session.pending[request_id] = future
        if target is not None:
            session.targets[request_id] = target
        try:
            # If the connection drops, the session fails the future: the wait
            # below reports it.
            with contextlib.suppress(ConnectionError):
                await _upload(conn, head, body, future, progress)
            try:
                answer = await asyncio.wait_for(future, self.timeout)
            except asyncio.TimeoutError:
                session.pending.pop(request_id, None)
                raise TimeoutError(
                    f"no answer from the {_WHAT} at {exchange.address} within {self.timeout} s"
                ) from None
            if target is not None and type(answer) is Reply:
                sink = session.sinks.get(request_id)
                if sink is not None:
                    await sink.written
                else:  # small: it came whole with the answer
                    await asyncio.to_thread(_write_whole, target, answer.body)
        finally:
            session.targets.pop(request_id, None)
            session.sinks.pop(request_id, None)
        return exchange, answer

    async def _connection(self) -> _ClientSession:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            session = self._session
            if session is not None and not session.conn.is_closed:
                return session
            exchange = Exchange(self.address, self.codecs, self.max_frame_size, self.token)
            limits = DEFAULT_LIMITS.replace(
                frame_timeout=self.timeout or DEFAULT_LIMITS.frame_timeout,
                max_frame_size=self.max_frame_size,
            )
            try:
                conn = await open_connection(
                    lambda conn: _ClientSession(conn, exchange),
                    self.host,
                    self.port,
                    limits=limits,
                    timeout=self.connect_timeout,
                    ssl_context=self.ssl_context,
                    uds=self.uds,
                )
            except (OSError, asyncio.TimeoutError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
                raise ConnectError(
                    f"cannot connect to the {_WHAT} at {exchange.address}: {reason}"
                ) from exc
            assert isinstance(conn.session, _ClientSession)
            self._session = conn.session
            return conn.session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.conn.close()
            await session.conn.closed_future

    async def __aenter__(self) -> AsyncRawDataClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _write_whole(target: Target, body: bytes) -> None:
    target.open(len(body))
    target.write(body)


async def _upload(
    conn: Connection,
    head: bytes,
    body: bytes | Source,
    answered: asyncio.Future[Any],
    progress: Progress | None,
) -> None:
    """Write a request: its header, then its payload as given (never joined to the
    header if large), or a file's pieces read in a worker thread; each piece
    waits for the socket, and an early answer (413) stops the upload."""
    if isinstance(body, bytes) and progress is None:
        if len(body) < 64 * 1024:
            conn.write(head + body if body else head)
        else:
            conn.write(head)
            conn.write(body)
        await conn.drain()
        return
    size = body.size if isinstance(body, Source) else len(body)
    meter = Meter(progress, "send", size)
    conn.write(head)
    meter.start()
    view = memoryview(body) if isinstance(body, bytes) else None
    sent = 0
    while sent < size and not answered.done():
        if view is not None:
            piece: Any = view[sent : sent + PIECE]
        else:
            assert isinstance(body, Source)
            piece = (await asyncio.to_thread(body.read))[: size - sent]
            if not piece:
                raise ValueError(f"the file payload ended after {sent} of its {size} bytes")
        conn.write(piece)
        sent += len(piece)
        meter.add(len(piece))
        await conn.drain()
