"""rawproto.engine.channel: the byte side of a connection, on a mock transport.

``Channel`` queues writes and hands them to the transport in one call, waits
for a slow reader (``drain``) and closes: plainly, lingering after an error,
or at once. A ``Connection`` is a ``Channel``; these tests call the channel's
own API on one attached to ``MockTransport`` (``mock_transport.py``), as
uvicorn's protocol tests do. Real sockets are ``test_engine_server.py``.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from dataserve.core.errors import RemoteProtocolError
from rawproto.engine import LINGER_SECONDS
from rawproto.engine.channel import Channel
from rawproto.proto.base import FrameError

from .lines import LineService, LineSession
from .mock_transport import MockTransport, VirtualClockLoop, connect, run_virtual


def test_a_connection_is_a_channel_and_a_buffered_protocol() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, _ = connect(LineService().session)
        assert isinstance(conn, Channel)
        assert isinstance(conn, asyncio.BufferedProtocol)
        assert conn.loop is loop

    run_virtual(main)


def test_writes_are_queued_as_given_and_leave_in_one_writelines() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        view = memoryview(b"view")
        conn.write(b"a")
        conn.write(view)
        conn.write(b"")  # nothing to queue
        assert t.writes == [b"!"]
        await loop.advance(0)
        assert t.writes == [b"!", [b"a", b"view"]]

    run_virtual(main)


def test_a_single_queued_write_goes_out_with_write_not_writelines() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.write(b"only")
        await loop.advance(0)
        assert t.writes == [b"!", b"only"]

    run_virtual(main)


def test_flush_writes_now_and_says_whether_the_transport_holds_nothing() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.write(b"x")
        assert conn.flush() is True
        assert t.writes == [b"!", b"x"]
        t.buffered = 10  # below the high mark: no pause, but not empty
        assert conn.flush() is False
        await loop.advance(0)
        assert t.writes == [b"!", b"x"]  # the scheduled flush found nothing more

    run_virtual(main)


def test_writes_after_close_are_dropped() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.close()
        conn.write(b"late")
        await loop.advance(0)
        assert t.sent() == b"!"
        assert conn.is_closed

    run_virtual(main)


def test_a_transport_closing_under_a_flush_is_not_an_error() -> None:
    class Closed(MockTransport):
        def write(self, data: bytes) -> None:
            raise RuntimeError("closed")

    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session, transport=Closed())
        conn.write(b"x")
        conn.flush()  # swallowed
        assert t.writes == []

    run_virtual(main)


def test_drain_returns_at_once_when_the_reader_keeps_up() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.write(b"x")
        await asyncio.wait_for(conn.drain(), 1)
        assert t.writes[-1] == b"x"  # drain flushed first

    run_virtual(main)


def test_drain_on_a_closing_channel_raises_connection_reset() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, _ = connect(LineService().session)
        conn.close()
        with pytest.raises(ConnectionResetError):
            await conn.drain()

    run_virtual(main)


def test_drain_empty_sets_a_zero_low_mark_then_restores_the_normal_ones() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        normal = t.marks[-1]
        t.set_buffered(normal[0] + 1)  # above the high mark: writing pauses
        waiter = asyncio.ensure_future(conn.drain(empty=True))
        await loop.advance(0)
        assert not waiter.done()
        assert t.marks[-1][1] == 0  # the transport reports an empty buffer only
        t.set_buffered(0)
        await asyncio.wait_for(waiter, 1)
        assert t.marks[-1] == normal

    run_virtual(main)


def test_close_with_nothing_pending_closes_the_transport_plainly() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        conn.write(b"bye")
        conn.close()
        assert t.writes[-1] == b"bye"  # flushed before closing
        assert t.closed and not t.eof_written and not t.aborted
        conn.close()  # twice is harmless
        await loop.advance(0)
        assert conn.closed_future.done()

    run_virtual(main)


def test_close_mid_frame_lingers_then_aborts_after_linger_seconds() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!half a li")  # the peer is still sending a frame
        conn.close()
        assert t.eof_written and not t.closed and t.reading
        conn.data_received(b"ne\n")  # discarded while lingering
        assert t.sent() == b"!"
        await loop.advance(LINGER_SECONDS - 0.01)
        assert not t.closed
        await loop.advance(0.02)
        assert t.aborted

    run_virtual(main)


def test_close_mid_frame_without_half_close_support_closes_at_once() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session, transport=MockTransport(can_write_eof=False))
        conn.data_received(b"!half")
        conn.close()
        assert t.closed and not t.eof_written

    run_virtual(main)


def test_abort_drops_queued_bytes_and_aborts_the_transport() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.write(b"never sent")
        conn.abort()
        await loop.advance(0)
        assert t.aborted and t.sent() == b"!"
        assert conn.is_closed

    run_virtual(main)


def test_fail_hands_the_error_to_the_session_which_answers_and_closes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        conn.fail(FrameError("bad thing", 400))
        assert t.sent() == b"!ERR 400 bad thing\n"
        assert t.eof_written  # fatal: a lingering close

    run_virtual(main)


def test_a_non_fatal_failure_keeps_the_connection_open() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(LineService().session)
        conn.data_received(b"!")
        error = FrameError("one frame", 400)
        error.fatal = False  # type: ignore[misc]
        conn.fail(error)
        assert t.sent().endswith(b"ERR 400 one frame\n")
        assert not t.closed and not t.eof_written and not conn.is_closed

    run_virtual(main)


def test_a_session_whose_failed_raises_gets_its_connection_aborted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(LineSession):
        def failed(self, exc: RemoteProtocolError) -> None:
            raise RuntimeError("failed() is broken")

    async def main(loop: VirtualClockLoop) -> None:
        service = LineService(Broken)
        conn, t = connect(service.session)
        conn.fail(FrameError("x", 400))
        assert t.aborted

    with caplog.at_level(logging.ERROR, logger="rawproto.engine"):
        run_virtual(main)
    assert "session.failed() raised" in caplog.text
