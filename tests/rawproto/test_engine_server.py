"""rawproto.engine over real sockets: RawServer and open_connection driving a toy line protocol."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from dataserve.core.limits import Limits
from rawproto.engine import Connection, RawServer, open_connection

from .lines import ConcurrentLineSession, Line, LineService


async def open_line(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await reader.readexactly(1) == b"!"
    writer.write(b"!")
    return reader, writer


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def until(condition: Any) -> None:
    """Wait for a server-side state the test can observe (bounded by ``run``'s timeout)."""
    while not condition():
        await asyncio.sleep(0.001)  # sleep-ok: yields to the loop while polling a state


def only_connection(server: RawServer) -> Connection:
    assert server._registry is not None
    (conn,) = server._registry.connections
    return conn


def test_an_in_order_session_holds_events_while_one_is_in_flight() -> None:
    async def main() -> None:
        service = LineService()
        async with RawServer(service) as server:
            reader, writer = await open_line(server.port)
            writer.write(b"wait\nfirst\n")
            await writer.drain()
            await until(lambda: server.connections == 1)
            conn = only_connection(server)
            await until(lambda: len(conn.proto.buf) == len(b"first\n"))  # type: ignore[union-attr]
            assert service.seen == 1  # "first" arrived and waits behind "wait"
            _, other = await open_line(server.port)
            other.write(b"go\n")
            assert await reader.readline() == b"done\n"
            assert await reader.readline() == b"echo first\n"
            writer.close()
            other.close()
        assert service.closed

    run(main())


def test_a_concurrent_session_answers_out_of_order() -> None:
    async def main() -> None:
        service = LineService(ConcurrentLineSession)
        async with RawServer(service) as server:
            reader, writer = await open_line(server.port)
            writer.write(b"wait\nfirst\ngo\n")
            lines = [await reader.readline() for _ in range(3)]
            assert lines == [b"echo first\n", b"echo go\n", b"done\n"]
            writer.close()

    run(main())


def test_max_pipelined_bounds_the_work_one_connection_queues() -> None:
    async def main() -> None:
        service = LineService(ConcurrentLineSession)
        async with RawServer(service, limits=Limits(max_pipelined=3)) as server:
            reader, writer = await open_line(server.port)
            writer.write(b"wait\n" * 10)
            await writer.drain()
            await until(lambda: server.connections == 1)
            conn = only_connection(server)
            await until(lambda: len(conn.proto.buf) == 7 * len(b"wait\n"))  # type: ignore[union-attr]
            assert service.seen == 3 and conn.in_flight == 3
            service.go.set()
            assert [await reader.readline() for _ in range(10)] == [b"done\n"] * 10
            writer.close()

    run(main())


def test_protocol_errors_get_the_protocols_answer() -> None:
    async def main() -> None:
        async with RawServer(LineService()) as server:
            reader, writer = await open_line(server.port)
            writer.write(b"x" * 200)
            assert await reader.readline() == b"ERR 413 line too long\n"
            assert await reader.read() == b""  # then closed
            writer.close()

    run(main())


def test_a_half_closed_peer_still_gets_its_answers() -> None:
    async def main() -> None:
        service = LineService(ConcurrentLineSession)
        async with RawServer(service) as server:
            reader, writer = await open_line(server.port)
            writer.write(b"wait\n")
            writer.write_eof()
            await until(lambda: server.connections == 1)
            conn = only_connection(server)
            await until(lambda: conn._eof)  # the EOF is seen before the answer
            assert conn.in_flight == 1
            service.go.set()
            assert await reader.read() == b"done\n"  # answered, then closed
            writer.close()

    run(main())


def test_connections_have_tcp_nodelay_and_the_limit_is_counted() -> None:
    async def main() -> None:
        async with RawServer(LineService()) as server:
            _, writer = await open_line(server.port)
            await until(lambda: server.connections == 1)
            conn = only_connection(server)
            assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()
            await conn.closed_future
            assert server.connections == 0

    run(main())


def test_reuse_port_lets_two_servers_share_a_port() -> None:
    async def main() -> None:
        first = await RawServer(LineService(), reuse_port=True).start()
        second = await RawServer(LineService(), port=first.port, reuse_port=True).start()
        assert second.port == first.port
        await first.stop()
        await second.stop()
        with pytest.raises(OSError):
            a = await RawServer(LineService()).start()
            try:
                await RawServer(LineService(), port=a.port).start()
            finally:
                await a.stop()

    run(main())


def test_writes_in_one_pass_are_coalesced() -> None:
    async def main() -> None:
        async with RawServer(LineService()) as server:
            reader, writer = await open_line(server.port)
            writer.write(b"a\nb\n")
            await writer.drain()
            assert await reader.readline() == b"echo a\n"
            conn = only_connection(server)
            writes: list[Any] = []
            real = conn.transport
            assert real is not None

            class Spy:
                def __getattr__(self, name: str) -> Any:
                    return getattr(real, name)

                def write(self, data: bytes) -> None:
                    writes.append(data)
                    real.write(data)

                def writelines(self, data: list[bytes]) -> None:
                    writes.append(list(data))
                    real.writelines(data)

            conn.transport = Spy()  # type: ignore[assignment]
            writer.write(b"x\ny\nz\n")
            assert [await reader.readline() for _ in range(4)] == [
                b"echo b\n",
                b"echo x\n",
                b"echo y\n",
                b"echo z\n",
            ]
            assert writes == [[b"echo x\n", b"echo y\n", b"echo z\n"]]
            conn.transport = real
            writer.close()

    run(main())


def test_open_connection_runs_a_session_on_an_outgoing_connection() -> None:
    class Client(ConcurrentLineSession):
        def handle(self, event: object) -> None:
            assert isinstance(event, Line)
            self.service.got.append(event.text)  # type: ignore[attr-defined]

    async def main() -> None:
        service = LineService()
        async with RawServer(service) as server:
            client_service = LineService()
            client_service.got = []  # type: ignore[attr-defined]
            conn = await open_connection(
                lambda c: Client(c, client_service), "127.0.0.1", server.port
            )
            conn.send(Line(b"hello"))
            await conn.drain(empty=True)
            await until(lambda: client_service.got)  # type: ignore[attr-defined]
            assert client_service.got == [b"echo hello"]  # type: ignore[attr-defined]
            conn.close()
            await conn.closed_future

    run(main())


def test_stop_waits_for_in_flight_work_and_aborts_after_the_timeout() -> None:
    async def main() -> None:
        service = LineService(ConcurrentLineSession)
        server = await RawServer(service).start()
        reader, writer = await open_line(server.port)
        writer.write(b"wait\n")
        await writer.drain()
        await until(lambda: service.seen == 1)
        await server.stop(timeout=0.2)  # "go" never comes: aborted
        assert await reader.read() == b""
        assert service.closed
        writer.close()

    run(main())
