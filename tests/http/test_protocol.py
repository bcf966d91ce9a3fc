"""dataserve.http.protocol: the HTTP/1.1 connection on a mock transport, as uvicorn's tests do.

The protocol is made as uvicorn makes it (``Config``, ``ServerState``), given a
transport that records what it is told, and fed bytes the way asyncio feeds
a buffered protocol: ``get_buffer()``, a copy into it, ``buffer_updated(n)``.
Real sockets are ``test_parsing.py``, ``test_pipeline.py`` and the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from dataserve.http.protocol import LINGER_SECONDS, QUEUED_READ_SIZE, DataServeHttpProtocol


class MockTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.reading = True
        self.closed = False
        self.aborted = False
        self.eof = False
        self.buffered = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    reply = scope["method"].encode() + b" " + scope["path"].encode() + b" " + body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(reply)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": reply})


def make(
    app: Any = echo_app, **config: Any
) -> tuple[DataServeHttpProtocol, MockTransport, ServerState]:
    state = ServerState()
    cfg = Config(app=app, http=DataServeHttpProtocol, lifespan="off", **config)
    protocol = DataServeHttpProtocol(cfg, state, {}, _loop=asyncio.get_running_loop())
    transport = MockTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


def feed(protocol: DataServeHttpProtocol, data: bytes) -> None:
    """As asyncio feeds a BufferedProtocol: into its buffer, however large the buffer."""
    while data:
        buffer = protocol.get_buffer(-1)
        n = min(len(buffer), len(data))
        buffer[:n] = data[:n]
        protocol.buffer_updated(n)
        data = data[n:]


async def until(condition: Callable[[], bool], turns: int = 200) -> None:
    """Let the loop run until ``condition`` holds (bounded by loop turns, not time)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def replies(t: MockTransport) -> int:
    return bytes(t.written).count(b"HTTP/1.1 ")


def test_a_request_is_answered_and_the_connection_kept() -> None:
    async def main() -> None:
        protocol, t, state = make()
        assert protocol in state.connections
        feed(protocol, b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        await until(lambda: bytes(t.written).endswith(b"PUT /x abc"))
        assert t.written.startswith(b"HTTP/1.1 200 OK\r\n")
        assert not t.closed and state.total_requests == 1

    asyncio.run(main())


def test_bytes_one_at_a_time_make_the_same_request() -> None:
    async def main() -> None:
        protocol, t, _ = make()
        for byte in b"POST /y HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi":
            feed(protocol, bytes([byte]))
        await until(lambda: bytes(t.written).endswith(b"POST /y hi"))

    asyncio.run(main())


def test_pipelined_requests_are_answered_in_order() -> None:
    async def main() -> None:
        protocol, t, state = make()
        feed(
            protocol,
            b"PUT /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\na"
            b"PUT /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nb",
        )
        await until(lambda: replies(t) == 2)
        out = bytes(t.written)
        assert out.index(b"PUT /1 a") < out.index(b"PUT /2 b")
        assert state.total_requests == 2

    asyncio.run(main())


def test_reads_are_small_while_requests_are_queued() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await gate.wait()
            await echo_app(scope, receive, send)

        protocol, t, _ = make(slow)
        assert len(protocol.get_buffer(-1)) > QUEUED_READ_SIZE
        feed(
            protocol,
            b"PUT /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
            b"PUT /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        )
        assert len(protocol.get_buffer(-1)) == QUEUED_READ_SIZE
        gate.set()
        await until(lambda: replies(t) == 2)

    asyncio.run(main())


def test_a_malformed_request_is_refused_with_close_and_never_reaches_the_app() -> None:
    async def main() -> None:
        called: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            called.append(scope)

        protocol, t, _ = make(app)
        feed(protocol, b"NOT HTTP AT ALL\r\n\r\n")
        await until(lambda: t.eof)
        assert t.written.startswith(b"HTTP/1.1 400 ")
        assert b"connection: close" in bytes(t.written).lower()
        assert called == []
        assert not t.closed  # lingering: our side is shut, the peer's may still send
        feed(protocol, b"more junk")  # dropped
        protocol.eof_received()
        assert t.closed
        assert LINGER_SECONDS > 0

    asyncio.run(main())


def test_connection_close_from_the_client_closes_after_the_answer() -> None:
    async def main() -> None:
        protocol, t, _ = make()
        feed(
            protocol,
            b"PUT /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        await until(lambda: t.closed)
        assert bytes(t.written).endswith(b"PUT /c ")

    asyncio.run(main())


def test_shutdown_closes_an_idle_connection_and_lets_an_answer_finish() -> None:
    async def main() -> None:
        protocol, t, _ = make()
        feed(protocol, b"PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        await until(lambda: replies(t) == 1)
        protocol.shutdown()
        assert t.closed

        gate = asyncio.Event()

        async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await gate.wait()
            await echo_app(scope, receive, send)

        protocol, t, _ = make(slow)
        feed(protocol, b"PUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(0)
        protocol.shutdown()
        assert not t.closed  # an answer is in progress
        gate.set()
        await until(lambda: t.closed)
        assert bytes(t.written).endswith(b"PUT /b ")
        assert b"connection: close" in bytes(t.written).lower()

    asyncio.run(main())


def test_connection_lost_forgets_the_connection() -> None:
    async def main() -> None:
        protocol, t, state = make()
        protocol.connection_lost(None)
        assert protocol not in state.connections and t.closed

    asyncio.run(main())


def test_a_peer_that_stops_reading_pauses_writes_until_it_reads_again() -> None:
    async def main() -> None:
        protocol, t, _ = make()
        t.buffered = 1 << 20
        protocol.pause_writing()
        assert protocol.write_flow.paused
        drained = asyncio.ensure_future(protocol.write_flow.drain())
        await asyncio.sleep(0)
        assert not drained.done()
        t.buffered = 0
        protocol.resume_writing()
        await asyncio.wait_for(drained, 1)
        assert not protocol.write_flow.paused and not t.aborted

    asyncio.run(main())
