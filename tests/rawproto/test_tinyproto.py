"""rawproto.tinyproto: seed 004's API, its echo example as written, hooks and limits."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataserve.core.security import TLSConfig
from rawproto.tinyproto import (
    MSG_MAX_SIZE,
    TinyProtoClient,
    TinyProtoConnection,
    TinyProtoConnectionDetails,
    TinyProtoError,
    TinyProtoPlugin,
    TinyProtoServer,
)
from tests.tcpy_pyts.helpers import refused_port

from ..conftest import ROOT, ServerProcess
from .conftest import finish

HERE = Path(__file__).parent


def seed_code(name: str, port: int) -> str:
    """The seed's example, changed only in its import line and port."""
    code = (HERE / name).read_text()
    code = code.replace("from tinyproto import", "from rawproto.tinyproto import")
    return code.replace("PORT=9123", f"PORT={port}")


def test_the_seed_echo_server_and_client_run_as_written() -> None:
    prelude = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
    )
    server = ServerProcess(
        [sys.executable, "-u", "-c", prelude + seed_code("seed004_echo_server.py", 0)]
    )
    try:
        client_code = seed_code("seed004_echo_client.py", server.port)

        def client() -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-u", "-c", client_code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )

        first = client()
        assert first.stdin is not None and first.stdout is not None
        for word in ("hello", "héllo wörld"):
            first.stdin.write(word + "\n")
            first.stdin.flush()
            assert first.stdout.readline() == f"Response from server: Echo back: {word}\n"
        first.stdin.write("QUIT\n")
        first.stdin.flush()
        _, err = first.communicate(timeout=30)
        assert first.returncode == 0, err

        # Piped at once: the next message crosses the server's echo on the wire.
        second = client()
        _, err = second.communicate("ping\nSRVQUIT\n", timeout=30)
        assert second.returncode == 0, err
        assert server.proc.wait(30) == 0  # SRVQUIT ended the server
    finally:
        status, log = finish(server)
    assert status == 0
    assert log.count("Connection opened from: ('127.0.0.1', ") == 2
    assert "Connection closed from: ('127.0.0.1', " in log


# --- in-process servers ------------------------------------------------------------


class ReadyServer(TinyProtoServer):
    """A server that says when it listens (``pre_loop`` runs after binding)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ready = threading.Event()
        self.connected = threading.Event()  # conn_init ran
        self.events: list[Any] = []

    def pre_loop(self) -> None:
        self.ready.set()

    def conn_init(self, conn_o: Any) -> None:  # the seed's one-parameter form
        self.events.append(("conn_init", conn_o))
        self.connected.set()

    def conn_shutdown(self, conn_o: Any) -> None:
        self.events.append(("conn_shutdown", conn_o))


class Running:
    def __init__(self, server: TinyProtoServer) -> None:
        self.server = server
        if not server.listen_addrs:
            server.add_addr("127.0.0.1", 0)
        self.thread = threading.Thread(target=server.start, daemon=True)
        self.thread.start()
        assert isinstance(server, ReadyServer) and server.ready.wait(10)
        self.port = server.ports[0]

    def stop(self) -> None:
        self.server.shutdown = True
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def run_server() -> Iterator[Any]:
    running: list[Running] = []

    def start(server: TinyProtoServer) -> Running:
        running.append(Running(server))
        return running[-1]

    yield start
    for r in running:
        r.stop()


class Recorder(TinyProtoConnection):
    """Records its hooks; echoes with a prefix; ``receive`` after ``ask``."""

    loop_pass_interval = 0.02

    def pre_loop(self) -> None:
        self.log: list[Any] = ["pre_loop"]
        self.got = threading.Event()
        self.passes = 0

    def transmission_received(self, msg: bytearray) -> None:
        self.log.append(("msg", bytes(msg)))
        if msg == b"ask":
            self.log.append(("received", bytes(self.receive())))
        elif msg == b"close":
            self.shutdown = True
        elif msg == b"raise":
            raise RuntimeError("a broken hook")
        elif msg.startswith(b"echo:"):
            self.transmit(bytes(msg[5:]))
        self.got.set()

    def loop_pass(self) -> None:
        self.passes += 1

    def post_loop(self) -> None:
        self.log.append("post_loop")


class Collector(TinyProtoConnection):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[bytes] = []
        self.arrived = threading.Semaphore(0)
        self.ended = threading.Event()

    def transmission_received(self, msg: bytearray) -> None:
        assert type(msg) is bytearray  # as the original delivers it
        self.messages.append(bytes(msg))
        self.arrived.release()

    def post_loop(self) -> None:
        self.ended.set()

    def next_message(self) -> bytes:
        assert self.arrived.acquire(timeout=30)
        return self.messages.pop(0)


def connect(port: int, handler: type[TinyProtoConnection] = Collector, **kwargs: Any) -> Any:
    client = TinyProtoClient(**kwargs)
    client.set_conn_handler(handler)
    index = client.connect_to("127.0.0.1", port)
    conn = client.active_connections[index]
    return client, conn


def test_hooks_run_in_order_and_messages_both_ways(run_server: Any) -> None:
    server = ReadyServer()
    server.set_conn_handler(Recorder)
    running = run_server(server)
    client, conn = connect(running.port)
    local = conn.socket_o.getsockname()
    assert client.connect_to("127.0.0.1", running.port) == 1  # an index
    for payload in (b"echo:hi", b"echo:" + bytes(range(256)) * 1000, b"echo:"):
        conn.transmit(payload)
        assert conn.next_message() == payload[5:]
    conn.transmit(b"ask")
    conn.transmit(b"direct")  # taken by the hook's receive()
    conn.transmit(b"close")
    assert conn.ended.wait(10)  # the server closed: our post_loop ran
    assert conn.shutdown
    server_conn = next(c for kind, c in server.events if kind == "conn_init")
    server_conn.join(10)
    assert server_conn.log[0] == "pre_loop" and server_conn.log[-1] == "post_loop"
    assert ("received", b"direct") in server_conn.log
    assert server_conn.peername_details == local
    for other in client.active_connections:
        other.shutdown = True
        other.join(10)


def test_active_connections_are_objects_and_hooks_take_either_form(run_server: Any) -> None:
    seen: list[Any] = []

    class TwoArgs(ReadyServer):
        def conn_init(self, conn_id: Any, conn_o: Any) -> None:  # the original's form
            seen.append((conn_id, conn_o))

        def conn_shutdown(self, conn_id: Any, conn_o: Any) -> None:
            seen.append(("closed", conn_id))

    class Echo(Collector):
        def transmission_received(self, msg: bytearray) -> None:
            self.transmit(msg)

    server = TwoArgs()
    server.set_conn_handler(Echo)
    running = run_server(server)
    _, conn = connect(running.port)
    conn.transmit(b"x")
    # The answer comes from the connection's thread, which starts after conn_init.
    assert conn.next_message() == b"x"
    (conn_id, conn_o) = seen[0]
    assert list(server.active_connections) == [conn_o]
    assert dict(server.active_connections.items()) == {conn_id: conn_o}
    assert server.active_connections.get(conn_id) is conn_o and len(server.active_connections) == 1
    assert isinstance(conn_o, Echo)
    conn.shutdown = True
    conn.join(10)
    conn_o.join(10)
    running.stop()
    assert ("closed", conn_id) in seen


def test_loop_pass_runs_on_a_timer_while_nothing_arrives(run_server: Any) -> None:
    class Ticker(Collector):
        loop_pass_interval = 0.01

        def loop_pass(self) -> None:
            self.passes = getattr(self, "passes", 0) + 1
            if self.passes == 5:
                self.transmit(b"five passes")

    server = ReadyServer()
    server.set_conn_handler(Ticker)
    running = run_server(server)
    _, conn = connect(running.port)
    assert conn.next_message() == b"five passes"
    conn.shutdown = True
    conn.join(10)


def test_a_message_is_handled_at_once_not_on_the_loop_timer(run_server: Any) -> None:
    class Slow(Collector):
        loop_pass_interval = 3600.0

        def transmission_received(self, msg: bytearray) -> None:
            self.transmit(b"re:" + msg)

    server = ReadyServer()
    server.set_conn_handler(Slow)
    running = run_server(server)

    class SlowClient(Collector):
        loop_pass_interval = 3600.0

    _, conn = connect(running.port, SlowClient)
    for i in range(50):
        conn.transmit(b"%d" % i)
        assert conn.next_message() == b"re:%d" % i
    conn.shutdown = True
    conn.join(10)


def test_plugins_transform_out_in_order_and_in_in_reverse(run_server: Any) -> None:
    class Upper(TinyProtoPlugin):
        def msg_transmit(self, msg: Any) -> Any:
            return bytes(msg).upper()

    class Wrap(TinyProtoPlugin):
        def msg_transmit(self, msg: Any) -> Any:
            return b"<" + bytes(msg) + b">"

        def msg_receive(self, msg: Any) -> Any:
            return msg[1:-1]

    class Echo(TinyProtoConnection):
        def transmission_received(self, msg: bytearray) -> None:
            self.transmit(msg)

    server = ReadyServer(connection_plugin_list=[Wrap()])
    server.set_conn_handler(Echo)
    running = run_server(server)
    client = TinyProtoClient(Collector, [Upper, Wrap])
    conn = client.active_connections[client.connect_to("127.0.0.1", running.port)]
    # Out: Upper then Wrap, "<ABC>"; the server's Wrap unwraps to "ABC" and
    # wraps its echo, "<ABC>"; in, our plugins in reverse: Wrap unwraps, Upper
    # (no msg_receive) passes it on.
    conn.transmit(b"abc")
    assert conn.next_message() == b"ABC"
    with pytest.raises(ValueError, match="Not a subclass of TinyProtoPlugin"):
        client.register_connection_plugin(object)
    conn.shutdown = True
    conn.join(10)


def test_an_oversize_message_is_refused_and_the_connection_goes_on(run_server: Any) -> None:
    class Echo(TinyProtoConnection):
        def transmission_received(self, msg: bytearray) -> None:
            self.transmit(b"%d" % len(msg))

    server = ReadyServer()
    server.max_message_size = 1000
    server.set_conn_handler(Echo)
    running = run_server(server)
    _, conn = connect(running.port)
    conn.transmit(bytes(1000))
    assert conn.next_message() == b"1000"
    with pytest.raises(
        TinyProtoError, match=r"Transmission rejected: the peer refused it \(refused\)"
    ):
        conn.transmit(bytes(1001))
    conn.transmit(b"ok")
    assert conn.next_message() == b"2"
    with pytest.raises(TypeError, match="transmit takes bytes, not str"):
        conn.transmit("text")
    conn.shutdown = True
    conn.join(10)


def test_the_connection_limit_answers_0xfe(run_server: Any) -> None:
    server = ReadyServer(connection_limit=1)
    server.set_conn_handler(Collector)
    running = run_server(server)
    _, first = connect(running.port)
    first.transmit(b"x")
    with pytest.raises(TinyProtoError, match=r"connection limit \(0xfe\)"):
        connect(running.port)
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    assert sock.recv(10) == b"\xfe"  # in place of the handshake, then closed
    assert sock.recv(10) == b""
    sock.close()
    first.shutdown = True
    first.join(10)


def test_a_bad_handshake_is_closed_and_others_are_served(run_server: Any) -> None:
    class Echo(TinyProtoConnection):
        def transmission_received(self, msg: bytearray) -> None:
            self.transmit(msg)

    server = ReadyServer()
    server.set_conn_handler(Echo)
    running = run_server(server)
    for garbage in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01", b"\x00"):
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=10)
        sock.sendall(garbage)
        assert sock.recv(1) == b"\xff"  # our handshake went first
        assert sock.recv(10) == b""  # then closed
        sock.close()
    _, conn = connect(running.port)
    conn.transmit(b"still here")
    assert conn.next_message() == b"still here"
    conn.shutdown = True
    conn.join(10)


def test_a_raising_hook_closes_its_connection_only(run_server: Any, caplog: Any) -> None:
    server = ReadyServer()
    server.set_conn_handler(Recorder)
    running = run_server(server)
    _, bad = connect(running.port)
    bad.transmit(b"raise")
    assert bad.ended.wait(10)
    assert "transmission_received raised; closing the connection" in caplog.text
    _, good = connect(running.port)
    good.transmit(b"echo:fine")
    assert good.next_message() == b"fine"
    good.shutdown = True
    good.join(10)


def test_transmit_on_a_closed_connection_sets_shutdown(run_server: Any) -> None:
    server = ReadyServer()
    server.set_conn_handler(Recorder)
    running = run_server(server)
    _, conn = connect(running.port)
    conn.transmit(b"close")
    assert conn.ended.wait(10)
    conn.transmit(b"after")  # as the original: no exception
    assert conn.shutdown
    assert conn.receive() == bytearray()


def test_tinyproto_3_constructors_and_details(run_server: Any) -> None:
    server = ReadyServer([TinyProtoConnectionDetails("127.0.0.1", 0)], Collector, None, [])
    running = run_server(server)
    client = TinyProtoClient(Collector, [], 5)
    index = client.connect_to(TinyProtoConnectionDetails("127.0.0.1", running.port))
    client.active_connections[index].transmit(b"x")
    client.active_connections[index].shutdown = True
    client.active_connections[index].join(10)


def test_the_client_loop_runs_until_shutdown() -> None:
    class Client(TinyProtoClient):
        loop_pass_interval = 0.01

        def pre_loop(self) -> None:
            self.log = ["pre_loop"]

        def loop_pass(self) -> None:
            self.log.append("pass")
            if len(self.log) == 4:
                self.shutdown = True

        def post_loop(self) -> None:
            self.log.append("post_loop")

    client = Client()
    client.start()
    assert client.log == ["pre_loop", "pass", "pass", "pass", "post_loop"]


def test_argument_checks() -> None:
    server = TinyProtoServer()
    with pytest.raises(ValueError, match="Incorrect ip address"):
        server.add_addr("not an ip", 1)
    with pytest.raises(ValueError, match="Port number"):
        server.add_addr("127.0.0.1", 70000)
    server.add_addr("::1", 0)  # IPv6 and port 0 are accepted here
    with pytest.raises(ValueError, match="subclass of TinyProtoConnection"):
        server.set_conn_handler(int)
    with pytest.raises(TinyProtoError, match="No addresses defined"):
        TinyProtoServer().start()
    client = TinyProtoClient()
    with pytest.raises(ValueError, match="Timeout value"):
        client.set_timeout("5")  # type: ignore[arg-type]
    client.set_timeout(2)
    assert client.socket_timeout == 2
    with (
        refused_port() as port,
        pytest.raises(TinyProtoError, match=f"cannot connect to 127.0.0.1:{port}"),
    ):
        client.connect_to("127.0.0.1", port)
    assert MSG_MAX_SIZE == 0xF0FFFFFF


def test_a_peer_that_stops_mid_message_is_closed_at_the_frame_deadline(run_server: Any) -> None:
    class Echo(Collector):
        def transmission_received(self, msg: bytearray) -> None:
            self.transmit(msg)

    server = ReadyServer()
    server.limits = server.limits.replace(frame_timeout=0.3)
    server.set_conn_handler(Echo)
    running = run_server(server)
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    sock.sendall(b"\xff")
    assert sock.recv(1) == b"\xff"
    sock.sendall(b"\x00\x00\x00\x0a")  # 10 bytes announced...
    assert sock.recv(1) == b"\xff"
    sock.sendall(b"abc")  # ...3 sent, then nothing
    assert sock.recv(10) == b""  # closed at the deadline, nothing delivered
    sock.close()
    _, conn = connect(running.port)
    conn.transmit(b"others are served")
    assert conn.next_message() == b"others are served"
    conn.shutdown = True
    conn.join(10)


# --- TLS, and binding beyond loopback -------------------------------------------------


def test_tinyproto_over_tls_with_client_certificates(run_server: Any, pki: dict[str, str]) -> None:
    class Echo(Collector):
        def transmission_received(self, msg: bytearray) -> None:
            self.transmit(msg)

    server = ReadyServer(tls=TLSConfig(pki["cert"], pki["key"], client_ca=pki["ca"]))
    server.set_conn_handler(Echo)
    running = run_server(server)
    cert = (pki["client_cert"], pki["client_key"])
    _, conn = connect(running.port, ca_file=pki["ca"], cert=cert)
    conn.transmit(b"over tls")
    assert conn.next_message() == b"over tls"
    conn.shutdown = True
    conn.join(10)
    with pytest.raises(TinyProtoError):
        connect(running.port, ca_file=pki["ca"])  # no client certificate


def test_binding_beyond_loopback_without_client_certificates_warns(
    run_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rawproto.tinyproto")
    server = ReadyServer()
    server.add_addr("127.0.0.1", 0)
    server.add_addr("0.0.0.0", 0)
    run_server(server).stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "tinyproto server listening on 0.0.0.0" in warnings[0]
    assert "the tinyproto wire format has no token" in warnings[0]


class Slow(TinyProtoConnection):
    """A hook that blocks until the test opens the gate."""

    gate = threading.Event()
    received: list[bytes] = []

    def transmission_received(self, msg: bytearray) -> None:
        Slow.gate.wait(30)
        Slow.received.append(bytes(msg))


def test_a_hook_thread_behind_stops_reading_until_it_catches_up(
    run_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rawproto.tinyproto.session as engine_side

    monkeypatch.setattr(engine_side, "_QUEUED_MESSAGES_HIGH", 3)
    Slow.gate.clear()
    Slow.received = []
    server = ReadyServer()
    server.set_conn_handler(Slow)
    running = run_server(server)
    _client, conn = connect(running.port)
    sent: list[int] = []

    def send_all() -> None:
        for i in range(20):
            conn.transmit(b"%d" % i)  # returns once the server accepted it
            sent.append(i)

    try:
        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        # The hook holds the first message; three more wait for it; the server
        # then stops reading, so the next announce is never answered.
        # The server's conn_init may run a moment after the client's handshake ends.
        assert server.connected.wait(10)
        server_conn = next(c for kind, c in server.events if kind == "conn_init")
        session = server_conn._session
        deadline = time.monotonic() + 30
        while not session.holding and time.monotonic() < deadline:
            time.sleep(0.01)  # sleep-ok: bounded poll for the loop to stop reading
        assert session.holding
        assert sender.is_alive() and len(sent) < 20  # its next announce is not read
        Slow.gate.set()  # the thread catches up: reading resumes
        sender.join(30)
        assert sent == list(range(20))
        conn.shutdown = True
        conn.join(10)
        server_conn.join(10)
    finally:
        Slow.gate.set()  # whatever happened, the hook returns and the server can stop
    assert Slow.received == [b"%d" % i for i in range(20)]
