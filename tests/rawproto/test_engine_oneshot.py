"""rawproto.engine.oneshot: one document in, one answer out, then close.

First on a mock transport with a virtual clock (``mock_transport``), as
uvicorn's protocol tests do: bytes are fed to ``data_received`` and the test
looks at what reached the transport. Then over real sockets, on a
``RawServer``. The sans-IO protocol is pyts' (``rawproto.proto.pyts``), the
one framing served this way; the service here is the test's own.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any, ClassVar

import pytest

from dataserve.core.limits import Limits
from dataserve.core.security import TLSConfig
from rawproto.engine import LINGER_SECONDS, RawServer
from rawproto.engine.oneshot import OneShot, is_one_shot
from rawproto.engine.registry import Registry
from rawproto.proto import pyts

from .mock_transport import MockTransport, VirtualClockLoop, run_virtual

LIMITS = Limits(idle_timeout=5, frame_timeout=2, send_timeout=3, max_body_size=2048)


def document(body: Any = "hi", endpoint: str = "/") -> bytes:
    headers = pyts.request_headers("127.0.0.1", 7000, endpoint)
    return pyts.encode_document(headers, body)


def answered(t: MockTransport) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(t.sent())
    return value


class Counter:
    def __init__(self) -> None:
        self.opened = self.closed = 0

    def connection_opened(self) -> None:
        self.opened += 1

    def connection_closed(self) -> None:
        self.closed += 1


class EchoService:
    """Answers the request's body at once, or, with ``hold``, when the test says."""

    one_shot: ClassVar[bool] = True

    def __init__(self, limits: Limits = LIMITS, hold: bool = False) -> None:
        self.limits = limits
        self.hold = hold
        self.held: list[tuple[OneShot, asyncio.Future[Any]]] = []
        self.abandoned_shots: list[OneShot] = []
        self.arrived = asyncio.Event()  # a request is held

    def protocol(self) -> pyts.Connection:
        return pyts.Connection(pyts.Role.SERVER, self.limits)

    def respond(self, shot: OneShot, event: object) -> asyncio.Future[Any] | None:
        assert isinstance(event, pyts.Request)
        if not self.hold:
            shot.answer(pyts.Response(pyts.response_headers(200), event.body))
            return None
        future: asyncio.Future[Any] = shot.loop.create_future()
        future.add_done_callback(
            lambda f: (
                None
                if f.cancelled()
                else shot.answer(pyts.Response(pyts.response_headers(200), f.result()))
            )
        )
        self.held.append((shot, future))
        self.arrived.set()
        return future

    def abandoned(self, shot: OneShot) -> None:
        self.abandoned_shots.append(shot)
        shot.answer(pyts.error_response(503, "shut down"))

    async def aclose(self) -> None:
        pass


def connect(
    service: EchoService,
    registry: Registry | None = None,
    transport: MockTransport | None = None,
) -> tuple[OneShot, MockTransport]:
    shot = OneShot(service, registry or Registry(service.limits))
    transport = transport or MockTransport()
    transport.protocol = shot
    shot.connection_made(transport)  # type: ignore[arg-type]
    return shot, transport


# --- the exchange on a mock transport -----------------------------------------------------


def test_a_service_says_whether_it_is_served_one_shot() -> None:
    assert is_one_shot(EchoService())
    assert not is_one_shot(object())


def test_a_request_read_whole_is_answered_in_one_write_and_the_connection_closes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        counter = Counter()
        registry = Registry(LIMITS, counter=counter)
        shot, t = connect(EchoService(), registry)
        assert registry.connections == {shot} and counter.opened == 1
        shot.data_received(document({"x": 1}))
        assert len(t.writes) == 1 and t.closed and not t.eof_written and not t.aborted
        assert answered(t) == {"headers": pyts.response_headers(200), "body": {"x": 1}}
        await loop.advance(0)  # connection_lost
        assert registry.connections == set() and counter.closed == 1

    run_virtual(main)


def test_a_request_fed_one_byte_at_a_time_gets_the_same_answer() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        shot, t = connect(EchoService())
        data = document([1, "two", {"3": None}])
        for i in range(len(data)):
            assert not t.writes
            shot.data_received(data[i : i + 1])
        assert answered(t)["body"] == [1, "two", {"3": None}] and t.closed

    run_virtual(main)


def test_an_answer_given_later_keeps_the_connection_open_and_stops_reading() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = EchoService(hold=True)
        shot, t = connect(service)
        shot.data_received(document())
        assert shot.answering and not t.closed and t.reading
        shot.data_received(b"more")  # nothing more is read on this connection
        assert not t.reading
        await loop.advance(60)  # no deadline runs while the handler does
        assert not t.closed and not t.writes
        service.held[0][1].set_result("later")
        await loop.advance(0)
        assert answered(t)["body"] == "later" and t.closed

    run_virtual(main)


def test_a_connection_lost_before_the_answer_cancels_what_runs() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = EchoService(hold=True)
        registry = Registry(LIMITS)
        shot, _t = connect(service, registry)
        shot.data_received(document())
        shot.connection_lost(ConnectionResetError())
        assert service.held[0][1].cancelled() and registry.connections == set()

    run_virtual(main)


def test_a_peer_that_shuts_its_side_after_the_request_still_gets_the_answer() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = EchoService(hold=True)
        shot, t = connect(service)
        shot.data_received(document())
        assert shot.eof_received() is True  # keep the transport open for the answer
        service.held[0][1].set_result("after eof")
        await loop.advance(0)
        assert answered(t)["body"] == "after eof" and t.closed

    run_virtual(main)


def test_a_peer_that_leaves_without_a_word_is_closed_with_no_answer() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        shot, t = connect(EchoService())
        assert shot.eof_received() is False
        assert t.closed and t.writes == []

    run_virtual(main)


def test_a_document_cut_short_by_eof_is_a_400() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        shot, t = connect(EchoService())
        shot.data_received(document()[:10])
        shot.eof_received()
        body = answered(t)
        assert body["headers"]["STATUS-CODE"] == 400
        assert "before the document was complete" in body["body"] and t.closed

    run_virtual(main)


# --- refusals and errors --------------------------------------------------------------------


def test_an_oversize_document_gets_413_and_a_lingering_close() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        shot, t = connect(EchoService())
        shot.data_received(document("x" * 4096))
        assert answered(t)["headers"]["STATUS-CODE"] == 413
        assert t.eof_written and not t.closed  # lingering: the peer may still send
        shot.data_received(b"what the peer still sends is discarded")
        assert answered(t)["headers"]["STATUS-CODE"] == 413
        await loop.advance(LINGER_SECONDS)
        assert t.aborted

    run_virtual(main)


def test_a_lingering_connection_closes_on_the_peers_eof() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        shot, t = connect(EchoService())
        shot.data_received(b"[not a document]")
        assert answered(t)["headers"]["STATUS-CODE"] == 400 and t.eof_written
        assert shot.eof_received() is False
        assert t.closed and not t.aborted

    run_virtual(main)


def test_over_the_connection_limit_a_peer_gets_503_and_the_others_are_unaffected() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = EchoService(Limits(max_connections=1))
        registry = Registry(service.limits, max_connections=1)
        first, t1 = connect(service, registry)
        _second, t2 = connect(service, registry)
        body = answered(t2)
        assert body["headers"]["STATUS-CODE"] == 503 and "limit of 1" in body["body"]
        assert t2.eof_written and registry.connections == {first}
        first.data_received(document("still served"))
        assert answered(t1)["body"] == "still served"

    run_virtual(main)


def test_a_server_shutting_down_refuses_new_connections() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        registry = Registry(LIMITS)
        registry.closing = True
        _shot, t = connect(EchoService(), registry)
        assert answered(t)["body"] == "the server is shutting down"
        assert registry.connections == set()

    run_virtual(main)


# --- deadlines --------------------------------------------------------------------------


def test_a_peer_that_sends_nothing_gets_408_after_the_idle_timeout() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        _shot, t = connect(EchoService())
        await loop.advance(LIMITS.idle_timeout - 0.5)
        assert not t.writes
        await loop.advance(0.5)
        body = answered(t)
        assert body["headers"]["STATUS-CODE"] == 408 and body["body"] == "idle for 5 s"
        assert t.closed and not t.eof_written  # a quiet connection needs no lingering

    run_virtual(main)


def test_a_document_that_stalls_gets_408_after_the_frame_timeout_from_its_start() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        shot, t = connect(EchoService())
        data = document()
        shot.data_received(data[:5])
        await loop.advance(1.5)
        shot.data_received(data[5:10])  # bytes trickling in do not move the deadline
        await loop.advance(0.5)
        body = answered(t)
        assert body["headers"]["STATUS-CODE"] == 408
        assert body["body"] == "frame not complete within 2 s"
        assert t.eof_written  # cut short: lingering, the peer may still be sending

    run_virtual(main)


class HoldingTransport(MockTransport):
    """As a real transport: closing waits until the peer took what is buffered."""

    def close(self) -> None:
        if not self.buffered:
            super().close()


def reply_waiting(loop: VirtualClockLoop) -> tuple[OneShot, HoldingTransport]:
    """A connection whose answer (100 kB still in the transport) waits for the peer."""
    transport = HoldingTransport()
    shot, t = connect(EchoService(), transport=transport)
    transport.buffered = 100_000
    shot.data_received(document())
    assert t.writes and not t.closed
    transport.set_buffered(100_000)  # over the high-water mark: pause_writing()
    return shot, transport


def test_a_reply_the_peer_never_takes_is_aborted_after_the_send_timeout() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        _shot, t = reply_waiting(loop)
        await loop.advance(LIMITS.send_timeout - 0.5)
        assert not t.aborted
        await loop.advance(0.5)
        assert t.aborted

    run_virtual(main)


def test_a_slow_reader_is_not_cut_while_it_takes_some_of_the_reply() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        _shot, t = reply_waiting(loop)
        for left in (80_000, 60_000, 40_000, 20_000):
            t.buffered = left  # it read some before each check
            await loop.advance(LIMITS.send_timeout)
        assert not t.aborted  # longer than idle_timeout in all, but never idle
        await loop.advance(LIMITS.send_timeout)  # then it took nothing for send_timeout
        assert t.aborted

    run_virtual(main)


# --- graceful shutdown --------------------------------------------------------------------


def test_shutdown_closes_a_quiet_connection_and_waits_for_one_answering() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = EchoService(hold=True)
        registry = Registry(LIMITS)
        quiet, t1 = connect(service, registry)
        busy, t2 = connect(service, registry)
        receiving, t3 = connect(service, registry)
        busy.data_received(document())
        receiving.data_received(document()[:20])
        for shot in (quiet, busy, receiving):
            shot._begin_shutdown()
        assert t1.closed and not t2.closed and not t3.closed
        receiving.data_received(document()[20:])  # a document begun is served
        for _, future in service.held:
            future.set_result("done")
        await loop.advance(0)
        assert answered(t2)["body"] == answered(t3)["body"] == "done"

    run_virtual(main)


def test_when_the_grace_period_ends_the_service_answers_what_is_left() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = EchoService(hold=True)
        shot, t = connect(service)
        shot.data_received(document())
        shot._abandon()
        assert service.abandoned_shots == [shot]
        assert answered(t)["headers"]["STATUS-CODE"] == 503 and t.closed

    run_virtual(main)


# --- over real sockets --------------------------------------------------------------------


async def exchange(port: int, data: bytes, ssl_context: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
    writer.write(data)
    answer = await reader.read()  # to EOF: the server closes after its answer
    writer.close()
    return answer


def test_a_raw_server_serves_a_one_shot_service_on_one_shot_connections() -> None:
    async def main() -> None:
        counter = Counter()
        server = await RawServer(EchoService(), port=0, connection_metrics=counter).start()
        try:
            answers = await asyncio.gather(*(exchange(server.port, document(i)) for i in range(20)))
            assert sorted(json.loads(a)["body"] for a in answers) == list(range(20))
        finally:
            await server.stop()
        assert counter.opened == counter.closed == 20

    asyncio.run(main())


def test_stop_lets_an_answer_in_flight_go_out_then_returns() -> None:
    async def main() -> None:
        service = EchoService(hold=True)
        server = await RawServer(service, port=0).start()
        call = asyncio.ensure_future(exchange(server.port, document()))
        await service.arrived.wait()
        stopping = asyncio.ensure_future(server.stop())
        await asyncio.sleep(0)  # sleep-ok: one turn of the loop, for stop() to begin
        assert not stopping.done() and server.connections == 1
        service.held[0][1].set_result("answered during shutdown")
        assert json.loads(await call)["body"] == "answered during shutdown"
        await stopping
        assert server.connections == 0

    asyncio.run(main())


def test_stop_answers_503_when_the_grace_period_ends() -> None:
    async def main() -> None:
        service = EchoService(hold=True)
        server = await RawServer(service, port=0).start()
        call = asyncio.ensure_future(exchange(server.port, document()))
        await service.arrived.wait()
        await server.stop(timeout=0.05)
        assert json.loads(await call)["headers"]["STATUS-CODE"] == 503

    asyncio.run(main())


def test_the_connection_limit_holds_over_real_sockets() -> None:
    async def main() -> None:
        service = EchoService(hold=True)
        server = await RawServer(service, port=0, max_connections=1).start()
        try:
            first = asyncio.ensure_future(exchange(server.port, document("first")))
            await service.arrived.wait()
            refused = json.loads(await exchange(server.port, document("second")))
            assert refused["headers"]["STATUS-CODE"] == 503
            service.held[0][1].set_result("first")
            assert json.loads(await first)["body"] == "first"
        finally:
            await server.stop()

    asyncio.run(main())


def test_tls_is_served_on_one_shot_connections(pki: dict[str, str]) -> None:
    async def main() -> None:
        tls = TLSConfig(pki["cert"], pki["key"])
        server = await RawServer(EchoService(), port=0, tls=tls).start()
        try:
            context = ssl.create_default_context(cafile=pki["ca"])
            answer = await exchange(server.port, document("secret"), context)
            assert json.loads(answer)["body"] == "secret"
        finally:
            await server.stop()

    asyncio.run(main())


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_a_request_in_pieces_over_a_socket_is_answered(size: int) -> None:
    async def main() -> None:
        server = await RawServer(EchoService(), port=0).start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            data = document(list(range(50)))
            for i in range(0, len(data), size):
                writer.write(data[i : i + size])
                await writer.drain()
            assert json.loads(await reader.read())["body"] == list(range(50))
            writer.close()
        finally:
            await server.stop()

    asyncio.run(main())
