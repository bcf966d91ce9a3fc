"""dataserve.http.cycle: one request's ASGI ``receive()`` and ``send()`` on a connection.

The connection is a stand-in recording what the cycle writes and tells it
(``fakes.py`` has the transport and the deadlines); the real protocol around
it is ``test_protocol.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dataserve.http.cycle import WHOLE_BODY, Cycle
from dataserve.http.flow import ReadFlow, WriteFlow
from dataserve.http.head import Head

from .fakes import Transport, Watchdog


class State:
    default_headers: list[tuple[bytes, bytes]] = []
    total_requests = 0


class Conn:
    def __init__(self) -> None:
        self.transport = Transport()
        self.read_flow = ReadFlow(self.transport)
        self.watchdog = Watchdog()
        self.write_flow = WriteFlow(self.transport, self.watchdog, 30, lambda: None)  # type: ignore[arg-type]
        self.server_state = State()
        self.buffer_cache = None
        self.completed: list[Cycle] = []
        self.lingering = 0

    def on_response_complete(self, cycle: Cycle) -> None:
        self.completed.append(cycle)

    def close_lingering(self) -> None:
        self.lingering += 1

    def out(self) -> bytes:
        return b"".join(self.transport.written)


def head(length: int | None = 0, *, expect_100: bool = False, chunked: bool = False) -> Head:
    return Head(
        length=length,
        chunked=chunked,
        keep_alive=True,
        expect_100=expect_100,
        upgrade=False,
        size=0,
    )


def cycle(method: str = "PUT", keep_alive: bool = True, **kw: Any) -> tuple[Cycle, Conn]:
    conn = Conn()
    scope = {"type": "http", "method": method, "path": "/x", "headers": []}
    return Cycle(conn, scope, head(**kw), keep_alive=keep_alive), conn  # type: ignore[arg-type]


def start(
    status: int = 200, headers: list[tuple[bytes, bytes]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers or [], **extra}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_a_response_with_a_length_is_written_as_it_is() -> None:
    async def main() -> None:
        c, conn = cycle()
        await c.send(start(200, [(b"Content-Length", b"2"), (b"X-A", b"1")]))
        await c.send(body(b"ok"))
        assert conn.out() == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\n\r\nok"
        assert c.response_complete and conn.completed == [c] and not conn.transport.closing

    asyncio.run(main())


def test_without_a_length_the_response_is_chunked() -> None:
    async def main() -> None:
        c, conn = cycle()
        await c.send(start())
        await c.send(body(b"abc", more=True))
        await c.send(body(b""))
        assert conn.out().endswith(b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")

    asyncio.run(main())


def test_head_and_204_have_no_body() -> None:
    async def main() -> None:
        c, conn = cycle("HEAD")
        await c.send(start(200, [(b"content-length", b"10")]))
        await c.send(body(b""))
        assert conn.out() == b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
        c, conn = cycle()
        await c.send(start(204))
        await c.send(body())
        assert b"transfer-encoding" not in conn.out()

    asyncio.run(main())


def test_reason_phrase_and_http_1_0_as_the_app_asks() -> None:
    async def main() -> None:
        c, conn = cycle()
        await c.send(start(200, [(b"content-length", b"0")], **{"dataserve.reason": "Fine"}))
        assert conn.out().startswith(b"HTTP/1.1 200 Fine\r\n")
        c, conn = cycle()
        await c.send(start(404, [(b"content-length", b"0")], **{"dataserve.http_version": "1.0"}))
        await c.send(body())
        assert conn.out().startswith(b"HTTP/1.0 404 Not Found\r\n")
        assert b"connection: close" in conn.out() and conn.transport.closing
        with pytest.raises(RuntimeError, match="Invalid HTTP reason phrase"):
            await cycle()[0].send(start(200, **{"dataserve.reason": "a\r\nb"}))

    asyncio.run(main())


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([(b"bad name", b"v")], "Invalid HTTP header name"),
        ([(b"x", b"a\nb")], "Invalid HTTP header value"),
    ],
)
def test_bad_headers_are_refused(headers: list[tuple[bytes, bytes]], message: str) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match=message):
            await cycle()[0].send(start(200, headers))

    asyncio.run(main())


def test_messages_out_of_order_and_wrong_lengths_are_errors() -> None:
    async def main() -> None:
        c, _ = cycle()
        with pytest.raises(RuntimeError, match="Expected ASGI message 'http.response.start'"):
            await c.send(body())
        await c.send(start(200, [(b"content-length", b"2")]))
        with pytest.raises(RuntimeError, match="Expected ASGI message 'http.response.body'"):
            await c.send(start())
        with pytest.raises(RuntimeError, match="longer than Content-Length"):
            await c.send(body(b"toolong"))
        with pytest.raises(RuntimeError, match="shorter than Content-Length"):
            await c.send(body(b"a"))
        c, _ = cycle()
        await c.send(start(200, [(b"content-length", b"0")]))
        await c.send(body())
        with pytest.raises(RuntimeError, match="after response already completed"):
            await c.send(body())

    asyncio.run(main())


def test_connection_close_from_the_app_or_the_cycle_closes_after_the_answer() -> None:
    async def main() -> None:
        c, conn = cycle()
        await c.send(start(200, [(b"content-length", b"0"), (b"connection", b"keep-alive, close")]))
        await c.send(body())
        assert conn.out().count(b"connection") == 1 and conn.transport.closing
        c, conn = cycle(keep_alive=False)
        await c.send(start(200, [(b"content-length", b"0")]))
        await c.send(body())
        assert b"connection: close\r\n" in conn.out() and conn.transport.closing

    asyncio.run(main())


def test_an_unread_body_and_no_keep_alive_closes_lingering() -> None:
    async def main() -> None:
        c, conn = cycle(length=100, keep_alive=False)
        await c.send(start(200, [(b"content-length", b"0")]))
        await c.send(body())
        assert conn.lingering == 1 and not conn.transport.closing

    asyncio.run(main())


def test_100_continue_when_the_app_first_asks_for_the_body() -> None:
    async def main() -> None:
        c, conn = cycle(length=3, expect_100=True)
        assert conn.out() == b""
        c.body.on_body(b"abc")
        c.body.on_message_complete()
        message = await c.receive()
        assert conn.out() == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert message["body"] == b"abc" and not message["more_body"]

    asyncio.run(main())


def test_the_whole_body_extension_is_in_the_scope() -> None:
    async def main() -> None:
        c, _ = cycle(length=4)
        read = c.scope["extensions"][WHOLE_BODY]["read"]
        c.body.on_body(b"data")
        c.body.on_message_complete()
        message = await read(100, 5.0)
        assert message == {"type": "http.request", "body": b"data", "more_body": False}

    asyncio.run(main())


def test_run_asgi_answers_500_for_an_app_that_fails_before_answering() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("broken app")

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def main() -> None:
        for app in (failing, silent):
            c, conn = cycle()
            await c.run_asgi(app)
            assert conn.out().startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert conn.out().endswith(b"Internal Server Error") and conn.transport.closing

    asyncio.run(main())


def test_run_asgi_closes_when_the_app_fails_mid_answer() -> None:
    async def half(scope: Any, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-length", b"10")]))
        await send(body(b"12345", more=True))
        raise ValueError("gone")

    async def main() -> None:
        c, conn = cycle()
        await c.run_asgi(half)
        assert conn.transport.closing and b"500" not in conn.out()

    asyncio.run(main())


def test_after_the_connection_is_lost_sends_are_dropped() -> None:
    async def main() -> None:
        c, conn = cycle()
        c.lost()
        assert c.disconnected
        await c.send(start(200))
        assert conn.out() == b""

    asyncio.run(main())
