"""tinyproto's ``socket_o``: the socket calls programs make, and what its timeout does.

The timeout acts as a blocking socket's would: ``receive()`` and
``transmit()`` give up once nothing has moved for that long, the connection's
``shutdown`` becomes true (as the original does on ``socket.timeout``), and a
peer that is slow but keeps moving is never cut. Peers here are raw sockets,
so each side of the exchange is under the test's control.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rawproto.tinyproto import TinyProtoClient, TinyProtoConnection, TinyProtoServer

TIMEOUT = 30


class Probe(TinyProtoConnection):
    """Runs ``job`` once from ``loop_pass`` (a hook, as tinyproto wants) and records it."""

    loop_pass_interval = 0.01
    job: Any = None

    def pre_loop(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.post_loop_ran = threading.Event()

    def loop_pass(self) -> None:
        job, self.job = self.job, None
        if job is not None:
            try:
                self.result = job(self)
            finally:
                self.done.set()

    def post_loop(self) -> None:
        self.post_loop_ran.set()


def run(conn: Any, job: Any) -> Any:
    conn.job = job
    assert conn.done.wait(TIMEOUT)
    return conn.result


def timed(fn: Any) -> Any:
    def job(conn: Any) -> tuple[Any, float, bool]:
        started = time.monotonic()
        value = fn(conn)
        return value, time.monotonic() - started, conn.shutdown

    return job


class Listening(TinyProtoServer):
    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()
        self.accepted = threading.Event()
        self.server_side: list[Any] = []

    def pre_loop(self) -> None:
        self.ready.set()

    def conn_init(self, conn_o: Any) -> None:
        self.server_side.append(conn_o)
        self.accepted.set()


@pytest.fixture
def tiny_server() -> Iterator[Listening]:
    server = Listening()
    server.set_conn_handler(Probe)
    server.add_addr("127.0.0.1", 0)
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    yield server
    server.shutdown = True
    thread.join(30)


def connect(port: int) -> Any:
    client = TinyProtoClient()
    client.set_conn_handler(Probe)
    return client.active_connections[client.connect_to("127.0.0.1", port)]


class RawPeer:
    """A tinyproto peer on a raw socket: it does the handshake, then only what it is told."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sock: socket.socket | None = None
        self._accepted = threading.Thread(target=self._accept, daemon=True)
        self._accepted.start()

    def _accept(self) -> None:
        sock, _ = self.listener.accept()
        sock.settimeout(TIMEOUT)
        sock.sendall(b"\xff")
        assert sock.recv(1) == b"\xff"
        self.sock = sock

    def ready(self) -> socket.socket:
        self._accepted.join(TIMEOUT)
        assert self.sock is not None
        return self.sock

    def recv_exactly(self, n: int) -> bytes:
        sock, data = self.ready(), bytearray()
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "the connection closed"
            data += chunk
        return bytes(data)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.listener.close()


@pytest.fixture
def peer() -> Iterator[RawPeer]:
    p = RawPeer()
    yield p
    p.close()


# --- the socket's own calls -------------------------------------------------------------


def test_socket_o_answers_what_tinyproto_programs_ask(tiny_server: Listening) -> None:
    client_side = connect(tiny_server.ports[0])
    assert tiny_server.accepted.wait(TIMEOUT)
    server_side = tiny_server.server_side[0]
    for conn, timeout in ((client_side, 5.0), (server_side, None)):
        sock = conn.socket_o
        # A client socket starts with the client's timeout, an accepted one with none.
        assert sock.gettimeout() == timeout
        assert sock.getblocking()
        sock.settimeout(90)
        assert sock.gettimeout() == 90.0
        sock.setblocking(False)
        assert (sock.gettimeout(), sock.getblocking()) == (0.0, False)
        sock.setblocking(True)
        assert sock.gettimeout() is None
        with pytest.raises(ValueError, match="out of range"):
            sock.settimeout(-1)
        with pytest.raises(TypeError):
            sock.settimeout("90")
        assert sock.fileno() > 2
        assert sock.family is socket.AF_INET and sock.type is socket.SOCK_STREAM
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert client_side.socket_o.getpeername() == server_side.socket_o.getsockname()
    assert client_side.socket_o.getsockname() == server_side.socket_o.getpeername()

    client_side.shutdown = True
    client_side.join(TIMEOUT)
    assert client_side.post_loop_ran.is_set()
    # Closed, as a closed socket: no descriptor, no options; the addresses stay.
    assert client_side.socket_o.fileno() == -1
    with pytest.raises(OSError):
        client_side.socket_o.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    assert client_side.socket_o.getpeername() == ("127.0.0.1", tiny_server.ports[0])


# --- the timeout on receive() -------------------------------------------------------------


def test_receive_gives_up_on_a_silent_peer_as_the_original_does(tiny_server: Listening) -> None:
    conn = connect(tiny_server.ports[0])
    conn.socket_o.settimeout(0.3)
    got, elapsed, shutdown = run(conn, timed(lambda c: c.receive()))
    assert got == bytearray() and type(got) is bytearray
    assert shutdown  # the original sets shutdown on socket.timeout
    assert 0.3 <= elapsed < 5
    conn.join(TIMEOUT)  # the connection ends: post_loop, then closed
    assert conn.post_loop_ran.is_set() and conn.socket_o.fileno() == -1


def test_a_slow_peer_that_keeps_sending_is_not_cut(peer: RawPeer) -> None:
    conn = connect(peer.port)
    conn.socket_o.settimeout(0.5)
    sock = peer.ready()
    payload = bytes(range(256)) * 64  # 16 KiB, sent in 8 pieces over about 1.6 s

    def trickle() -> None:
        sock.sendall(struct.pack(">I", len(payload)))
        assert peer.recv_exactly(1) == b"\xff"  # accepted
        for i in range(0, len(payload), 2048):
            time.sleep(0.2)  # sleep-ok: pacing, a slow peer; each piece well within the timeout
            sock.sendall(payload[i : i + 2048])

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    got, elapsed, shutdown = run(conn, timed(lambda c: c.receive()))
    sender.join(TIMEOUT)
    assert bytes(got) == payload and not shutdown
    assert elapsed > 0.5  # the whole message took longer than the timeout


# --- the timeout on transmit() -------------------------------------------------------------


def test_transmit_gives_up_on_a_peer_that_never_accepts(peer: RawPeer) -> None:
    conn = connect(peer.port)
    conn.socket_o.settimeout(0.3)
    _, elapsed, shutdown = run(conn, timed(lambda c: c.transmit(b"hello")))
    assert peer.recv_exactly(4) == struct.pack(">I", 5)  # announced, never answered
    assert shutdown and 0.3 <= elapsed < 5


def test_transmit_to_a_slow_reader_goes_on_while_it_reads_and_stops_when_it_stops(
    peer: RawPeer,
) -> None:
    conn = connect(peer.port)
    conn.socket_o.settimeout(0.6)
    sock = peer.ready()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    size = 24 * 1024 * 1024
    stop_after = 12 * 1024 * 1024

    def slow_reader() -> None:
        assert peer.recv_exactly(4) == struct.pack(">I", size)
        sock.sendall(b"\xff")
        taken = 0
        while taken < stop_after:
            time.sleep(0.05)  # sleep-ok: pacing, 1 MiB every 50 ms, then nothing
            taken += len(peer.recv_exactly(1024 * 1024))

    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    started = time.monotonic()
    _, elapsed, shutdown = run(conn, timed(lambda c: c.transmit(b"x" * size)))
    reader.join(TIMEOUT)
    # It went on for as long as the reader read (well beyond the timeout), then
    # gave up once nothing moved.
    assert shutdown
    assert elapsed > 0.6 + 0.4
    assert time.monotonic() - started < TIMEOUT
