"""rawproto.engine's Connection on a mock transport: bytes in, writes, pauses and closes out.

No socket and no sleep: the connection is fed with ``data_received`` as
asyncio would feed it, the transport records what the connection did, and
the deadlines run on a virtual clock (``tests/rawproto/mock_transport.py``).
The same engine over real sockets is ``test_engine_server.py``.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from dataserve.core.limits import Limits
from rawproto.engine import LINGER_SECONDS, WRITE_HIGH_WATER, WRITE_LOW_WATER, Connection
from rawproto.engine.registry import Registry

from .lines import ConcurrentLineSession, LineService, LineSession
from .mock_transport import VirtualClockLoop, connect, run_virtual

# --- opening and writing ---------------------------------------------------------------


def test_opening_sends_the_protocols_first_bytes_and_sets_the_water_marks() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        assert t.writes == [b"!"]
        assert t.marks == [(WRITE_HIGH_WATER, WRITE_LOW_WATER)]
        assert (conn.peername, conn.sockname) == (("127.0.0.1", 50000), ("127.0.0.1", 7000))
        assert t.reading and not t.closed

    run_virtual(main)


def test_the_answers_to_one_batch_of_bytes_leave_in_one_write() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()
        conn, t = connect(service.session)
        conn.data_received(b"!a\nb\nc\n")
        assert t.writes == [b"!", [b"echo a\n", b"echo b\n", b"echo c\n"]]
        assert service.seen == 3

    run_virtual(main)


def test_bytes_arriving_one_at_a_time_make_the_same_events() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()
        conn, t = connect(service.session)
        for byte in b"!hello\nworld\n":
            conn.data_received(bytes([byte]))
        assert t.writes == [b"!", b"echo hello\n", b"echo world\n"]

    run_virtual(main)


def test_writes_outside_a_batch_are_coalesced_until_the_loop_turns() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        conn.write(b"one ")
        conn.write(b"two")
        assert t.writes == [b"!"]  # queued, not written yet
        await loop.advance(0)
        assert t.writes == [b"!", [b"one ", b"two"]]

    run_virtual(main)


# --- requests in flight ------------------------------------------------------------------


def test_an_in_order_session_stops_reading_while_a_request_is_in_flight() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()
        conn, t = connect(service.session)
        conn.data_received(b"!wait\nfirst\n")
        assert service.seen == 1 and conn.in_flight == 1
        assert not t.reading  # "first" waits in our buffer, and the peer's
        service.go.set()
        await loop.advance(0)
        assert t.sent() == b"!done\necho first\n"
        assert conn.in_flight == 0 and t.reading

    run_virtual(main)


def test_max_pipelined_requests_pause_reading_until_one_finishes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(ConcurrentLineSession)
        conn, t = connect(service.session, limits=Limits(max_pipelined=2))
        conn.data_received(b"!" + b"wait\n" * 5)
        assert service.seen == 2 and conn.in_flight == 2
        assert not t.reading
        service.go.set()
        await loop.advance(0)
        assert service.seen == 5 and conn.in_flight == 0
        assert t.sent() == b"!" + b"done\n" * 5
        assert t.reading

    run_virtual(main)


def test_a_peer_that_half_closes_gets_its_answers_then_the_connection_closes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(ConcurrentLineSession)
        conn, t = connect(service.session)
        conn.data_received(b"!wait\n")
        assert conn.eof_received() is True  # keep the transport open for the answer
        assert not t.closed
        service.go.set()
        await loop.advance(0)
        assert t.sent() == b"!done\n"
        assert t.closed and not t.aborted and not t.eof_written
        assert conn.closed_future.done()

    run_virtual(main)


def test_eof_on_a_quiet_connection_closes_it() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        conn.eof_received()
        assert t.closed and not t.aborted

    run_virtual(main)


def test_a_session_that_raises_aborts_its_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!raise\nnever\n")
        assert t.aborted and t.sent() == b"!"
        await loop.advance(0)
        assert conn.closed_future.done()

    with caplog.at_level(logging.ERROR, logger="rawproto.engine"):
        run_virtual(main)
    assert "session.handle() raised" in caplog.text


def test_a_request_that_fails_aborts_its_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!crash\n")
        assert conn.in_flight == 1 and not t.aborted
        await loop.advance(0)
        assert t.aborted and conn.in_flight == 0

    with caplog.at_level(logging.ERROR, logger="rawproto.engine"):
        run_virtual(main)
    assert "the request failed" in caplog.text


class HoldingSession(LineSession):
    """Its consumer is behind while ``behind`` is true."""

    behind = True

    @property
    def hold_reading(self) -> bool:
        return self.behind


def test_a_session_holding_reading_pauses_the_transport_until_update_flow() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(HoldingSession)
        conn, t = connect(service.session)
        conn.data_received(b"!a\n")
        assert not t.reading and t.pauses == 1
        assert t.sent() == b"!echo a\n"  # what arrived was handled; only reading stops
        session = conn.session
        assert isinstance(session, HoldingSession)
        session.behind = False
        conn.update_flow()
        assert t.reading

    run_virtual(main)


# --- flow control ------------------------------------------------------------------------


def test_a_full_write_buffer_holds_events_back_until_the_peer_reads() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        t.set_buffered(WRITE_HIGH_WATER + 1)  # the peer stopped reading
        assert not t.reading
        conn.data_received(b"a\nb\n")  # already on its way when reading paused
        assert t.sent() == b"!"
        t.set_buffered(WRITE_LOW_WATER)
        assert t.sent() == b"!echo a\necho b\n"
        assert t.reading

    run_virtual(main)


def test_drain_waits_for_the_buffer_to_fall_and_fails_when_the_connection_closes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        await conn.drain()  # nothing buffered: returns at once
        t.set_buffered(WRITE_HIGH_WATER + 1)
        first = asyncio.ensure_future(conn.drain())
        await loop.advance(0)
        assert not first.done()
        t.set_buffered(WRITE_LOW_WATER)
        await loop.advance(0)
        assert first.done() and first.result() is None
        t.set_buffered(WRITE_HIGH_WATER + 1)
        second = asyncio.ensure_future(conn.drain())
        await loop.advance(0)
        conn.close()
        with pytest.raises(ConnectionResetError):
            await second
        with pytest.raises(ConnectionResetError):
            await conn.drain()

    run_virtual(main)


def test_drain_empty_waits_until_the_transport_holds_nothing() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        t.set_buffered(10)  # bytes the kernel has not taken yet: under the high mark
        waiter = asyncio.ensure_future(conn.drain(empty=True))
        await loop.advance(0)
        assert t.marks[-1] == (0, 0)  # marks of 0: the transport pauses writing...
        assert not waiter.done()
        t.set_buffered(0)  # ... until the kernel has taken every byte
        await loop.advance(0)
        assert waiter.done()
        assert t.marks[-1] == (WRITE_HIGH_WATER, WRITE_LOW_WATER)

    run_virtual(main)


# --- protocol errors and closing -------------------------------------------------------


def test_a_protocol_error_is_answered_then_the_connection_lingers() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!" + b"x" * 200)
        assert t.sent() == b"!ERR 413 line too long\n"
        # FIN sent, the peer's further bytes read and dropped, so it reads the answer.
        assert t.eof_written and not t.closed and t.reading
        conn.data_received(b"still sending\n")
        assert t.sent() == b"!ERR 413 line too long\n"
        await loop.advance(LINGER_SECONDS - 0.1)
        assert not t.closed
        await loop.advance(0.2)
        assert t.aborted

    run_virtual(main)


def test_the_peers_eof_ends_a_lingering_close() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"?")  # a bad hello
        assert t.sent() == b"!ERR 400 bad hello\n" and t.eof_written
        assert conn.eof_received() is False  # asyncio closes the transport itself
        conn.connection_lost(None)
        assert conn.closed_future.done()

    run_virtual(main)


def test_close_without_a_pending_frame_is_a_plain_close() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!a\n")
        conn.write(b"bye\n")
        conn.close()
        assert t.sent() == b"!echo a\nbye\n"
        assert t.closed and not t.eof_written and not t.aborted
        assert conn.is_closed
        conn.write(b"too late\n")
        await loop.advance(0)
        assert t.sent().endswith(b"bye\n")

    run_virtual(main)


def test_abort_drops_what_is_queued() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        conn.write(b"never sent\n")
        conn.abort()
        await loop.advance(0)
        assert t.aborted and t.sent() == b"!"
        assert conn.closed_future.done()

    run_virtual(main)


def test_over_the_connection_limit_the_protocol_refuses_and_lingers() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        registry = Registry(Limits(), max_connections=1)
        first, t1 = connect(LineService().session, registry=registry)
        _, t2 = connect(LineService().session, registry=registry)
        assert t2.sent() == b"ERR 503 the server is at its limit of 1 connections\n"
        assert t2.eof_written  # the peer may be sending already: it reads the answer
        assert registry.connections == {first}
        assert not t1.closed
        first.close()
        await loop.advance(0)
        assert registry.connections == set()

    run_virtual(main)


def test_graceful_shutdown_closes_quiet_connections_and_waits_for_busy_ones() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        registry = Registry(Limits())
        service = LineService(ConcurrentLineSession)
        quiet, tq = connect(service.session, registry=registry)
        busy, tb = connect(service.session, registry=registry)
        quiet.data_received(b"!")
        busy.data_received(b"!wait\n")
        registry.closing = True  # what RawServer.stop() does, then tells each connection
        assert busy.closing
        for conn in (quiet, busy):
            conn._begin_shutdown()
        assert tq.closed and not tb.closed
        service.go.set()
        await loop.advance(0)
        assert tb.sent() == b"!done\n" and tb.closed and not tb.aborted

    run_virtual(main)


def test_abandon_lets_the_session_answer_then_closes() -> None:
    class Answering(ConcurrentLineSession):
        def abandoned(self) -> None:
            self.conn.write(b"gone\n")

    async def main(loop: VirtualClockLoop) -> None:
        registry = Registry(Limits())
        service = LineService(Answering)
        conn, t = connect(service.session, registry=registry)
        conn.data_received(b"!wait\n")
        registry.closing = True
        conn._begin_shutdown()
        assert not t.closed
        conn._abandon()
        assert t.sent() == b"!gone\n" and t.closed

    run_virtual(main)


# --- deadlines ---------------------------------------------------------------------------


def test_no_handshake_within_the_timeout_gets_408_and_a_plain_close() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        _, t = connect(LineService().session, limits=Limits(handshake_timeout=3))
        await loop.advance(2.9)
        assert not t.closed
        await loop.advance(0.2)
        assert t.sent() == b"!ERR 408 no handshake within 3 s\n"
        assert t.closed and not t.eof_written

    run_virtual(main)


def test_the_idle_deadline_moves_with_activity() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session, limits=Limits(idle_timeout=10))
        conn.data_received(b"!a\n")
        await loop.advance(9)
        conn.data_received(b"b\n")
        await loop.advance(9.5)
        assert not t.closed
        await loop.advance(0.6)
        assert t.sent().endswith(b"ERR 408 idle for 10 s\n") and t.closed

    run_virtual(main)


def test_no_idle_deadline_while_a_request_is_in_flight() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(ConcurrentLineSession)
        conn, t = connect(service.session, limits=Limits(idle_timeout=10))
        conn.data_received(b"!wait\n")
        await loop.advance(100)
        assert not t.closed
        service.go.set()
        await loop.advance(0)
        assert t.sent() == b"!done\n"
        await loop.advance(10.1)  # idle from the answer on
        assert t.closed

    run_virtual(main)


def test_the_frame_deadline_is_absolute_not_reset_by_each_byte() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session, limits=Limits(frame_timeout=5))
        conn.data_received(b"!par")
        await loop.advance(3)
        conn.data_received(b"ti")  # more of the same line: the deadline stays
        await loop.advance(1.9)
        assert not t.closed and not t.eof_written
        await loop.advance(0.2)
        assert t.sent() == b"!ERR 408 frame not complete within 5 s\n"
        assert t.eof_written  # a frame cut short: the peer may still be sending

    run_virtual(main)


def test_a_completed_frame_restarts_the_frame_deadline_for_the_next() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()
        conn, t = connect(service.session, limits=Limits(frame_timeout=5))
        conn.data_received(b"!par")
        await loop.advance(4)
        conn.data_received(b"t\nnext")  # one line done, the next begun now
        await loop.advance(4)
        assert not t.closed
        await loop.advance(1.1)
        assert t.sent() == b"!echo part\nERR 408 frame not complete within 5 s\n"

    run_virtual(main)


def test_a_peer_that_reads_nothing_is_aborted_after_the_send_timeout() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session, limits=Limits(send_timeout=5))
        conn.data_received(b"!")
        t.set_buffered(WRITE_HIGH_WATER + 1)
        await loop.advance(4.9)
        assert not t.closed
        await loop.advance(0.2)
        assert t.aborted  # an answer would not get through

    run_virtual(main)


def test_a_slow_reader_that_takes_something_keeps_its_connection() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session, limits=Limits(send_timeout=5))
        conn.data_received(b"!")
        t.set_buffered(4 * WRITE_HIGH_WATER)
        for left in (3, 2):  # it takes a little within each send_timeout
            await loop.advance(4.9)
            t.buffered = left * WRITE_HIGH_WATER  # still above the low mark: still paused
            await loop.advance(0.2)
            assert not t.closed
        await loop.advance(5.1)  # then nothing any more
        assert t.aborted

    run_virtual(main)


def test_no_deadline_runs_while_the_engine_holds_the_bytes_back() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        service = LineService()  # in order: "par" waits behind "wait"
        conn, t = connect(service.session, limits=Limits(frame_timeout=5, idle_timeout=5))
        conn.data_received(b"!wait\npar")
        await loop.advance(60)
        assert not t.closed
        service.go.set()
        await loop.advance(0)
        assert t.sent() == b"!done\n"
        await loop.advance(5.1)  # "par" is the peer's again: its frame deadline ran out
        assert t.sent().endswith(b"ERR 408 frame not complete within 5 s\n")

    run_virtual(main)


def test_connection_lost_cancels_requests_and_tells_the_session() -> None:
    closed: list[BaseException | None] = []

    class Told(ConcurrentLineSession):
        def closed(self, exc: BaseException | None) -> None:
            closed.append(exc)

    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(Told)
        conn, _ = connect(service.session)
        conn.data_received(b"!wait\n")
        (task,) = conn._tasks
        error = ConnectionResetError("reset by peer")
        conn.connection_lost(error)
        await loop.advance(0)
        assert task.cancelled()
        assert closed == [error]
        assert conn.closed_future.done() and conn.is_closed

    run_virtual(main)


def test_a_connection_is_an_asyncio_protocol() -> None:
    # Buffered: reads land in a buffer of the connection's choosing.
    assert issubclass(Connection, asyncio.BufferedProtocol)
