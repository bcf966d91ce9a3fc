"""The engine as a BufferedProtocol, on a mock transport: where reads land, and the output cap.

Bytes go in as asyncio feeds a buffered protocol: ``get_buffer()``, a copy
into it, ``buffer_updated(n)``. A frame whose protocol announces a large
payload (the native framing's ``payload_size``) is read into a buffer of the
payload's own; its answers, queued in one batch, stop the connection taking
requests once they reach the output cap, and the output gate follows the
transport's pauses.
"""

from __future__ import annotations

from collections.abc import Callable

from rawproto.engine import WRITE_HIGH_WATER, Connection, Session
from rawproto.engine.pump import PAYLOAD_FROM
from rawproto.engine.registry import READ_SIZE
from rawproto.proto.base import Role
from rawproto.proto.native import PREFACE, NativeConnection, Reply, Request

from .mock_transport import VirtualClockLoop, connect, run_virtual


class Recorder(Session):
    """Records the requests; answers each at once with ``answer_size`` bytes."""

    concurrent = True

    def __init__(self, conn: Connection, answer_size: int = 0) -> None:
        super().__init__(conn, NativeConnection(Role.SERVER))
        self.requests: list[Request] = []
        self.answer_size = answer_size

    def handle(self, event: object) -> None:
        if isinstance(event, Request):
            self.requests.append(event)
            if self.answer_size:
                self.conn.send(Reply(event.request_id, 2, b"a" * self.answer_size))


def recorders(answer_size: int = 0) -> tuple[list[Recorder], Callable[[Connection], Recorder]]:
    """The sessions made, and the factory that makes them."""
    made: list[Recorder] = []

    def factory(conn: Connection) -> Recorder:
        made.append(Recorder(conn, answer_size))
        return made[-1]

    return made, factory


def feed(conn: Connection, data: bytes) -> list[int]:
    """Deliver ``data`` as a buffered transport would; the size of each buffer offered."""
    offered = []
    while data:
        view = conn.get_buffer(-1)
        offered.append(len(view))
        n = min(len(view), len(data))
        view[:n] = data[:n]
        conn.buffer_updated(n)
        data = data[n:]
    return offered


def request(request_id: int, body: bytes, resource: str = "/x") -> bytes:
    client = NativeConnection(Role.CLIENT)
    client.initiate()
    return client.send(Request(request_id, resource, 2, body))


def test_a_large_payload_is_read_into_a_buffer_of_its_own() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        sessions, factory = recorders()
        conn, _ = connect(factory)
        payload = bytes(range(256)) * 4096  # 1 MiB
        offered = feed(conn, PREFACE + request(1, payload))
        # The preface and header come through the shared read buffer; once the
        # payload is announced, the next read is offered all of what is left.
        assert offered[0] == READ_SIZE
        assert offered[1] == len(payload) - (READ_SIZE - len(PREFACE) - 12 - 2)
        assert len(offered) == 2  # the rest arrived in that one buffer
        (got,) = sessions[0].requests
        assert got == Request(1, "/x", 2, payload)
        assert conn.get_buffer(-1).nbytes == READ_SIZE  # back to the shared buffer

    run_virtual(main)


def test_a_small_rest_of_a_payload_comes_through_the_protocol() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        sessions, factory = recorders()
        conn, _ = connect(factory)
        payload = b"z" * (READ_SIZE + PAYLOAD_FROM // 2)
        offered = feed(conn, PREFACE + request(1, payload))
        assert offered == [READ_SIZE, READ_SIZE]  # less than PAYLOAD_FROM was left
        assert sessions[0].requests == [Request(1, "/x", 2, payload)]

    run_virtual(main)


def test_a_peer_closing_inside_a_payload_gets_an_error_and_the_buffer_goes() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        sessions, factory = recorders()
        conn, t = connect(factory)
        feed(conn, PREFACE + request(1, bytes(4 * PAYLOAD_FROM))[: READ_SIZE + 1000])
        assert conn._sink is not None
        conn.eof_received()
        assert b"closed in the middle of a frame" in t.sent()
        await loop.advance(3)
        assert t.closed and conn._sink is None and not sessions[0].requests

    run_virtual(main)


def test_answers_queued_in_one_batch_stop_it_at_the_output_cap() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        size = 300 * 1024  # two answers reach the cap
        sessions, factory = recorders(size)
        conn, t = connect(factory)
        feed(conn, PREFACE + b"".join(request(i, b"") for i in range(1, 11)))
        handled = len(sessions[0].requests)
        assert handled == -(-WRITE_HIGH_WATER // size)  # no more than reach the cap
        t.set_buffered(WRITE_HIGH_WATER + 1)  # the peer reads nothing: writing pauses
        await loop.advance(0)
        assert len(sessions[0].requests) == handled and not conn.gate.open
        t.set_buffered(0)  # it read everything
        await loop.advance(0)
        assert conn.gate.open
        assert len(sessions[0].requests) > handled  # taken again, a cap's worth at a time

    run_virtual(main)


def test_the_output_gate_follows_the_transport_and_runs_its_waiters_on_opening() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t = connect(lambda c: Recorder(c))
        ran: list[str] = []
        conn.gate.when_open(lambda: ran.append("now"))
        assert ran == ["now"]  # open: at once
        t.set_buffered(WRITE_HIGH_WATER + 1)
        assert not conn.gate.open
        conn.gate.when_open(lambda: ran.append("later"))
        assert ran == ["now"]
        t.set_buffered(0)
        assert conn.gate.open and ran == ["now", "later"]

    run_virtual(main)


def test_data_received_still_feeds_a_buffered_connection() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        sessions, factory = recorders()
        conn, _ = connect(factory)
        conn.data_received(PREFACE + request(3, b"abc"))
        assert sessions[0].requests == [Request(3, "/x", 2, b"abc")]

    run_virtual(main)
