"""rawproto.tinyproto.session: a tinyproto connection on the engine's loop, on a mock transport.

The peer is the sans-IO tinyproto protocol in the client role: its bytes
are fed to the ``Connection`` (as uvicorn's protocol tests feed a protocol),
what the transport was given is fed back to it, and the connection's inbox
(what its hook thread would take) is read directly. No hook thread runs.
"""

from __future__ import annotations

import queue
from typing import Any

from rawproto.proto.base import Role
from rawproto.proto.tinyproto import (
    SC_CONLIMIT,
    Accept,
    Accepted,
    Announce,
    Handshake,
    Message,
    Refuse,
)
from rawproto.proto.tinyproto import TinyProtoConnection as Wire
from rawproto.tinyproto.bridge import CLOSED, READY, MessageRefused, Waiter
from rawproto.tinyproto.connection import TinyProtoConnection
from rawproto.tinyproto.session import TinySession

from .mock_transport import MockTransport, VirtualClockLoop, connect, run_virtual


class Peer:
    def __init__(self, t: MockTransport) -> None:
        self.t = t
        self.wire = Wire(Role.CLIENT)
        self.read = 0

    def events(self) -> list[Any]:
        new = self.t.sent()[self.read :]
        self.read += len(new)
        self.wire.receive_data(new)
        out = []
        while not isinstance(event := self.wire.next_event(), type(None)):
            if event.__class__.__name__ == "NeedData":
                break
            out.append(event)
        return out


def inbox(owner: TinyProtoConnection) -> list[tuple[str, Any]]:
    items = []
    while True:
        try:
            items.append(owner._inbox.get_nowait())
        except queue.Empty:
            return items


def opened(
    admit: Any = None,
) -> tuple[Any, MockTransport, TinySession, TinyProtoConnection, Peer]:
    owner = TinyProtoConnection()
    conn, t = connect(lambda c: TinySession(c, owner, 1000, admit))
    session = conn.session
    assert isinstance(session, TinySession)
    peer = Peer(t)
    return conn, t, session, owner, peer


def test_the_handshake_makes_the_connection_ready() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, _t, session, owner, peer = opened()
        assert owner._session is session and owner.socket_o is not None
        assert [type(e) for e in peer.events()] == [Handshake]  # our 0xff
        conn.data_received(peer.wire.initiate())
        assert session.ready.done() and inbox(owner) == [(READY, None)]

    run_virtual(main)


def test_a_message_from_the_peer_is_accepted_and_reaches_the_inbox() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, _t, session, owner, peer = opened()
        peer.events()
        conn.data_received(peer.wire.initiate() + peer.wire.send(Announce(5)))
        assert [type(e) for e in peer.events()] == [Accepted]
        conn.data_received(peer.wire.send(Message(bytearray(b"hello"))))
        assert inbox(owner)[-1] == ("msg", bytearray(b"hello"))
        assert (session.queued_messages, session.queued_bytes) == (1, 5)

    run_virtual(main)


def test_a_message_over_the_limit_is_refused_and_the_connection_goes_on() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t, _session, _owner, peer = opened()
        peer.events()
        conn.data_received(peer.wire.initiate() + peer.wire.send(Announce(5000)))
        refused = peer.events()
        assert refused and type(refused[0]).__name__ == "Refused"
        assert not t.closed
        conn.data_received(peer.wire.send(Announce(2)))
        assert [type(e) for e in peer.events()] == [Accepted]

    run_virtual(main)


def test_transmit_announces_then_sends_once_accepted() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, _t, session, _owner, peer = opened()
        peer.events()
        conn.data_received(peer.wire.initiate())
        waiter = Waiter()
        session.transmit(b"ours", waiter)
        await loop.advance(0)
        (announce,) = peer.events()
        assert announce == Announce(4) and session.busy
        conn.data_received(peer.wire.send(Accept()))
        (message,) = peer.events()
        assert type(message) is Message and bytes(message.data) == b"ours"
        assert waiter.done() and waiter.wait(0) and not session.busy

    run_virtual(main)


def test_a_refused_transmit_raises_on_the_thread() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, _t, session, _owner, peer = opened()
        peer.events()
        conn.data_received(peer.wire.initiate())
        waiter = Waiter()
        session.transmit(b"no thanks", waiter)
        await loop.advance(0)
        peer.events()
        conn.data_received(peer.wire.send(Refuse()))
        assert waiter.done()
        try:
            waiter.wait(0)
        except MessageRefused as exc:
            assert "refused" in str(exc)
        else:
            raise AssertionError("the refusal did not reach the waiter")

    run_virtual(main)


def test_closing_fails_pending_transmits_and_tells_the_thread() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        conn, t, session, owner, peer = opened()
        peer.events()
        conn.data_received(peer.wire.initiate())
        first, second = Waiter(), Waiter()
        session.transmit(b"a", first)
        session.transmit(b"b", second)
        t.close()
        await loop.advance(0)
        assert first.done() and second.done()
        assert (CLOSED, None) in inbox(owner)
        late = Waiter()
        session.transmit(b"late", late)
        assert late.done()

    run_virtual(main)


def test_a_connection_over_the_limit_is_refused_with_0xfe() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        _conn, t, _session, _owner, _peer = opened(admit=lambda s: False)
        assert t.sent() == bytes([SC_CONLIMIT])
        assert t.closed or t.eof_written

    run_virtual(main)


def test_reading_is_held_while_the_thread_is_far_behind() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        _conn, _t, session, _owner, _peer = opened()
        assert session.hold_reading is False
        session.queued_messages = 5000  # far more than the thread has taken
        assert session.hold_reading is True and session.holding
        session.taken_messages = 5000
        assert session.hold_reading is False

    run_virtual(main)
