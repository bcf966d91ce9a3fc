"""rawproto.native.call: one blocking call's request and answer, against a server
played by hand over a socket pair."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest

from dataserve.core.codec import default_registry
from dataserve.core.errors import ConnectionClosed, ServiceUnavailable
from rawproto.native.call import Call
from rawproto.native.client import RawDataClient
from rawproto.native.exchange import Exchange
from rawproto.native.files import Target
from rawproto.native.link import Link
from rawproto.proto.base import Role
from rawproto.proto.native import Error, NativeConnection, Reply, Request

MiB = 1 << 20


class Peer:
    """The server's end: reads requests, writes frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.proto = NativeConnection(Role.SERVER)
        self.sock.sendall(self.proto.initiate())

    def requests(self, count: int) -> list[Request]:
        found: list[Request] = []
        while len(found) < count:
            self.proto.receive_data(self.sock.recv(MiB))
            found += [e for e in self.proto.events() if isinstance(e, Request)]
        return found


Wire = tuple[Link, socket.socket, Exchange, Peer]


@pytest.fixture
def wire() -> Iterator[Wire]:
    mine, theirs = socket.socketpair()
    mine.settimeout(10)
    theirs.settimeout(10)
    exchange = Exchange("peer", default_registry, 1 << 30)
    mine.sendall(exchange.opening())
    link = Link(RawDataClient(1))
    try:
        yield link, mine, exchange, Peer(theirs)
    finally:
        mine.close()
        theirs.close()


def answer(call: Call) -> Reply | Error:
    got = None
    while got is None:
        got = call.answer()
    return got


def test_a_small_request_goes_in_one_write_and_its_reply_comes_back(wire: Wire) -> None:
    link, sock, exchange, peer = wire
    request_id, head, body = exchange.request_parts("/echo", b"abc")
    call = Call(link, sock, exchange, request_id, None)
    assert call.upload(head, body, None) is None
    (request,) = peer.requests(1)
    assert (request.request_id, request.resource, request.body) == (request_id, "/echo", b"abc")
    peer.sock.sendall(peer.proto.send(Reply(request_id, request.tag, b"abc")))
    assert answer(call) == Reply(request_id, request.tag, b"abc")


def test_a_large_payload_goes_in_pieces_with_progress(wire: Wire) -> None:
    link, sock, exchange, peer = wire
    progress: list[int] = []
    arrived: list[bytes] = []
    request_id, head, body = exchange.request_parts("/echo", b"x" * (3 * MiB))
    call = Call(link, sock, exchange, request_id, None)
    reader = threading.Thread(target=lambda: arrived.append(peer.requests(1)[0].body))
    reader.start()
    assert call.upload(head, body, lambda _d, done, _t: progress.append(done)) is None
    reader.join(10)
    assert progress == [0, MiB, 2 * MiB, 3 * MiB]
    assert arrived == [b"x" * (3 * MiB)]


def test_a_large_reply_arrives_whole_and_one_for_a_file_goes_there(wire: Wire) -> None:
    link, sock, exchange, peer = wire
    big = bytes(range(256)) * (MiB // 256)
    for into in (None, io.BytesIO()):
        request_id, head, body = exchange.request_parts("/big", None)
        target = Target(into, None) if into is not None else None
        call = Call(link, sock, exchange, request_id, target)
        assert call.upload(head, body, None) is None
        peer.requests(1)
        sender = threading.Thread(
            target=peer.sock.sendall, args=(peer.proto.send(Reply(request_id, 0, big)),)
        )
        sender.start()
        got = answer(call)
        sender.join(10)
        assert isinstance(got, Reply)
        if into is None:
            assert got.body == big
        else:
            assert into.getvalue() == big and target is not None and target.written == len(big)


def test_an_early_answer_stops_the_upload(wire: Wire) -> None:
    link, sock, exchange, peer = wire
    size = 16 * MiB
    request_id, head, body = exchange.request_parts("/limited", b"x" * size)
    call = Call(link, sock, exchange, request_id, None)
    peer.sock.sendall(peer.proto.send(Error(request_id, 413, "too large")))
    received = []

    def drain() -> None:
        while chunk := peer.sock.recv(MiB):
            received.append(len(chunk))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert call.upload(head, body, lambda *_: None) == Error(request_id, 413, "too large")
    sock.shutdown(socket.SHUT_WR)
    reader.join(10)
    assert sum(received) < size


def test_a_reply_cut_short_is_connection_closed(wire: Wire) -> None:
    link, sock, exchange, peer = wire
    request_id, head, body = exchange.request_parts("/big", None)
    call = Call(link, sock, exchange, request_id, None)
    call.upload(head, body, None)
    peer.requests(1)
    frame = peer.proto.send(Reply(request_id, 0, b"y" * MiB))

    def cut() -> None:
        peer.sock.sendall(frame[: len(frame) // 2])
        peer.sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=cut)
    sender.start()
    with pytest.raises(ConnectionClosed, match="in the middle of an answer"):
        answer(call)
    sender.join(10)


def test_a_connection_error_is_raised_and_others_answers_are_skipped(wire: Wire) -> None:
    link, sock, exchange, peer = wire
    request_id, head, body = exchange.request_parts("/r", None)
    call = Call(link, sock, exchange, request_id, None)
    call.upload(head, body, None)
    peer.requests(1)
    peer.sock.sendall(
        peer.proto.send(Reply(request_id + 1, 0, b"not mine"))
        + peer.proto.send(Error(0, 503, "shutting down"))
    )
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        answer(call)
