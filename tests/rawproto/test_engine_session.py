"""rawproto.engine.session: the defaults of ``Session`` a framing builds on.

Each default hook is called on a session whose connection is a recording
stand-in and whose protocol is the toy line protocol (``lines.py``); the
last test runs a default session on a ``Connection`` over a mock transport.
"""

from __future__ import annotations

from typing import Any

from dataserve.core.buffer_cache import BufferCache
from dataserve.core.buffers import BodyBuffer
from rawproto.engine import Session
from rawproto.engine.session import SessionFactory
from rawproto.proto.base import FrameError

from .lines import Line, LineProtocol
from .mock_transport import VirtualClockLoop, connect, run_virtual


class Conn:
    """What a session calls on its connection, recorded."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closes = 0
        self.buffer_cache: BufferCache | None = None

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closes += 1


class Silent(LineProtocol):
    def initiate(self) -> bytes:
        return b""

    def error_reply(self, error: Any) -> bytes:
        return b""


def session(proto: LineProtocol | None = None) -> tuple[Session, Conn]:
    conn = Conn()
    return Session(conn, proto or LineProtocol()), conn  # type: ignore[arg-type]


def test_opened_writes_the_protocols_opening_bytes() -> None:
    s, conn = session()
    s.opened()
    assert conn.written == [b"!"]


def test_opened_writes_nothing_for_a_protocol_with_no_opening_bytes() -> None:
    s, conn = session(Silent())
    s.opened()
    assert conn.written == []


def test_poll_turns_need_data_into_none_and_passes_events_on() -> None:
    s, _ = session()
    assert s.poll() is None
    s.proto.receive_data(b"!hi\n")
    assert s.poll() == Line(b"hi")
    assert s.poll() is None


def test_the_default_handle_ignores_events() -> None:
    s, conn = session()
    assert s.handle(Line(b"x")) is None
    assert conn.written == []


def test_failed_sends_the_error_reply_and_closes_on_a_fatal_error() -> None:
    s, conn = session()
    s.failed(FrameError("nope", 400))
    assert conn.written == [b"ERR 400 nope\n"] and conn.closes == 1


def test_failed_keeps_the_connection_on_a_non_fatal_error() -> None:
    s, conn = session()
    error = FrameError("just this frame", 413)
    error.fatal = False  # type: ignore[misc]
    s.failed(error)
    assert conn.written == [b"ERR 413 just this frame\n"] and conn.closes == 0


def test_failed_with_no_reply_only_closes() -> None:
    s, conn = session(Silent())
    s.failed(FrameError("x", 400))
    assert conn.written == [] and conn.closes == 1


def test_payload_sink_is_a_body_buffer_of_the_announced_size() -> None:
    s, _ = session()
    sink = s.payload_sink(1000)
    assert isinstance(sink, BodyBuffer)
    assert len(sink.remaining()) == 1000 and not sink.complete
    sink.discard()


def test_a_large_payloads_sink_comes_from_the_connections_cache() -> None:
    s, conn = session()
    cache = conn.buffer_cache = BufferCache(1 << 30, 10.0)
    first = s.payload_sink(2 << 20)
    assert isinstance(first, BodyBuffer)
    first.write(b"a" * (2 << 20))
    body = first.finish()
    assert cache.held == 2 << 20
    where = id(body)
    del body
    second = s.payload_sink(2 << 20)
    assert isinstance(second, BodyBuffer)
    second.write(b"b" * (2 << 20))
    assert id(second.finish()) == where and cache.reused == 1


def test_the_other_defaults_hold_nothing_back() -> None:
    s, conn = session()
    assert s.hold_reading is False and s.busy is False
    assert s.closing() is None
    s.abandoned()
    s.closed(None)
    s.closed(OSError("reset"))
    assert conn.written == [] and conn.closes == 0
    assert Session.concurrent is False


def test_a_plain_session_on_a_connection_opens_and_ignores_requests() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        factory: SessionFactory = lambda conn: Session(conn, LineProtocol())  # noqa: E731
        conn, t = connect(factory)
        conn.data_received(b"!a\nb\n")
        assert t.sent() == b"!" and conn.in_flight == 0 and t.reading

    run_virtual(main)
