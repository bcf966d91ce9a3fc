"""rawproto.tinyproto against the original tinyproto 2.0.1 and 3.0 from PyPI, both ways.

Each original is installed in its own folder (``interop_target``) and runs in
a subprocess; the side under test runs in this process.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rawproto.tinyproto import TinyProtoClient, TinyProtoConnection, TinyProtoError, TinyProtoServer

from ..conftest import ServerProcess, interop_target, run_python
from ..interop import ORIGINALS as INTEROP
from .conftest import finish

MiB = 1024 * 1024
ORIGINALS = [(name, reqs[0]) for name, reqs in INTEROP.items() if name.startswith("tinyproto")]

# Shared by the scripts below: build a server or client the way each version's
# constructor wants (2.x: setters; 3.0: constructor arguments and details).
COMPAT = """
import sys, threading, time, hashlib, tinyproto
from tinyproto import TinyProtoServer, TinyProtoClient, TinyProtoConnection
V3 = hasattr(tinyproto, "TinyProtoConnectionDetails")

def details(host, port):
    if not V3:
        return (host, port)
    d = tinyproto.TinyProtoConnectionDetails.__new__(tinyproto.TinyProtoConnectionDetails)
    d.host, d.port, d.socket_connect_details = host, port, (host, port)  # port 0 allowed
    return d
"""

ORIGINAL_SERVER = (
    COMPAT
    + """
class Echo(TinyProtoConnection):
    def transmission_received(self, msg):
        self.transmit(msg)

class Server(TinyProtoServer):
    def pre_loop(self):
        print("listening on 127.0.0.1:%d" % self.listen_socks[0].getsockname()[1], flush=True)

limit = int(sys.argv[1]) if len(sys.argv) > 1 else None
if V3:
    server = Server([details("127.0.0.1", 0)], Echo, limit)
else:
    server = Server()
    server.set_conn_handler(Echo)
    server.connection_limit = limit
    server.listen_addrs.append(("127.0.0.1", 0))  # add_addr refuses port 0
server.start()
"""
)

ORIGINAL_CLIENT = (
    COMPAT
    + """
got = []
arrived = threading.Event()

class Client(TinyProtoConnection):
    def transmission_received(self, msg):
        got.append(bytes(msg))
        arrived.set()

if V3:
    client = TinyProtoClient(Client)
    cid = client.connect_to(tinyproto.TinyProtoConnectionDetails("127.0.0.1", PORT))
else:
    client = TinyProtoClient()
    client.set_conn_handler(Client)
    cid = client.connect_to("127.0.0.1", PORT)
conn = client.active_connections[cid]
deadline = time.monotonic() + 30
while conn.peername_details is None:  # the original connects in its thread
    assert time.monotonic() < deadline
    time.sleep(0.01)  # sleep-ok: the original exposes no connected event; bounded poll

def call(msg):
    arrived.clear()
    conn.transmit(msg)
    assert arrived.wait(60), "no answer"
    return got.pop()

print(call(b"hello"))
big = bytes(range(256)) * (64 * 1024 * 4)  # 64 MiB
echo = call(big)
print("64MiB", len(echo), hashlib.sha256(echo).hexdigest() == hashlib.sha256(big).hexdigest())
try:
    conn.transmit(big + b"!")
    print("not refused")
except tinyproto.TinyProtoError as exc:
    print("refused", exc)
# Nothing more on this connection: the refusal byte wakes the original's
# select loop, whose thread then takes the lock to read a length that never
# comes (until its 5 s socket timeout). Going on after a refusal is shown
# with this project's own client.
conn.shutdown = True
"""
)


@pytest.fixture(params=ORIGINALS, ids=[name for name, _ in ORIGINALS])
def original(request: Any) -> Path:
    name, requirement = request.param
    return interop_target(name, requirement)


# --- the original client against our server ------------------------------------------


class EchoConnection(TinyProtoConnection):
    def transmission_received(self, msg: bytearray) -> None:
        self.transmit(msg)


class Ready(TinyProtoServer):
    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def pre_loop(self) -> None:
        self.ready.set()


@pytest.fixture
def our_server() -> Iterator[Ready]:
    server = Ready()
    server.max_message_size = 64 * MiB  # one byte more is refused
    server.set_conn_handler(EchoConnection)
    server.add_addr("127.0.0.1", 0)
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    yield server
    server.shutdown = True
    thread.join(30)


def test_the_original_client_against_our_server(original: Path, our_server: Ready) -> None:
    code = ORIGINAL_CLIENT.replace("PORT", str(our_server.ports[0]))
    result = run_python(code, pythonpath=original, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "b'hello'"
    assert lines[1] == "64MiB 67108864 True"
    # Our refusal byte, 0xfc, is a refusal to the original too.
    assert lines[2] == "refused Transmission rejected: bytearray(b'\\xfc')"
    assert len(lines) == 3


# --- our client against the original server ------------------------------------------


class Collector(TinyProtoConnection):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[bytes] = []
        self.arrived = threading.Semaphore(0)

    def transmission_received(self, msg: bytearray) -> None:
        self.got.append(bytes(msg))
        self.arrived.release()

    def call(self, msg: bytes) -> bytes:
        self.transmit(msg)
        assert self.arrived.acquire(timeout=60)
        return self.got.pop(0)


def start_original(target: Path, *args: str) -> ServerProcess:
    import sys

    return ServerProcess(
        [sys.executable, "-c", ORIGINAL_SERVER, *args], env={"PYTHONPATH": str(target)}, cwd=target
    )


def stop(server: ServerProcess) -> None:
    finish(server)


def test_our_client_against_the_original_server(original: Path) -> None:
    server = start_original(original)
    try:
        client = TinyProtoClient()
        client.set_conn_handler(Collector)
        conn = client.active_connections[client.connect_to("127.0.0.1", server.port)]
        assert conn.call(b"hello") == b"hello"
        big = bytes(range(256)) * (64 * 1024 * 4)
        echo = conn.call(big)
        assert len(echo) == 64 * MiB
        assert hashlib.sha256(echo).digest() == hashlib.sha256(big).digest()
        assert conn.call(b"") == b""
        conn.shutdown = True
        conn.join(30)
    finally:
        stop(server)


def test_the_original_server_refuses_an_oversize_announce(original: Path) -> None:
    # Nothing this large is ever built: the announce alone is refused.
    server = start_original(original)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(b"\xff")
        assert sock.recv(1) == b"\xff"
        sock.sendall((0xF1000000).to_bytes(4, "big"))  # above MSG_MAX_SIZE
        assert sock.recv(1) == b"\x00"
        sock.close()
    finally:
        stop(server)


def test_the_original_servers_connection_limit_is_reported(original: Path) -> None:
    server = start_original(original, "1")
    try:
        client = TinyProtoClient()
        client.set_conn_handler(Collector)
        first = client.active_connections[client.connect_to("127.0.0.1", server.port)]
        assert first.call(b"one") == b"one"
        # The original writes 254 zero bytes and closes with our handshake byte
        # unread, which resets the connection: the zeros may be lost with it.
        with pytest.raises(TinyProtoError, match="over its connection limit"):
            client.connect_to("127.0.0.1", server.port)
        first.shutdown = True
        first.join(30)
    finally:
        stop(server)


# --- a file transfer as tpft does it (issue: socket_o must be a socket) -------------------
#
# tpft, the program seed 004 points to, sets ``socket_o.settimeout(90)`` in its
# connections' pre_loop and then moves a file as a sequence of messages, reading an
# answer after each. ``transfer_app`` does the same with the standard library only,
# so the very same classes run here and on the originals.

HERE = Path(__file__).parent
FILE_SIZE = 2 * MiB + 123  # nine chunks of 256 KiB, the last one short

ORIGINAL_TRANSFER_SERVER = (
    COMPAT
    + """
sys.path.insert(0, HERE)
from transfer_app import connection_classes
_, Receiver = connection_classes(TinyProtoConnection)

class Server(TinyProtoServer):
    def pre_loop(self):
        print("listening on 127.0.0.1:%d" % self.listen_socks[0].getsockname()[1], flush=True)

if V3:
    server = Server([details("127.0.0.1", 0)], Receiver)
else:
    server = Server()
    server.set_conn_handler(Receiver)
    server.listen_addrs.append(("127.0.0.1", 0))
server.start()
""".replace("HERE", repr(str(HERE)))
)

ORIGINAL_TRANSFER_CLIENT = (
    COMPAT
    + """
import json
sys.path.insert(0, HERE)
from transfer_app import connection_classes
Uploader, _ = connection_classes(TinyProtoConnection)

if V3:
    client = TinyProtoClient(Uploader)
    cid = client.connect_to(tinyproto.TinyProtoConnectionDetails("127.0.0.1", PORT))
else:
    client = TinyProtoClient()
    client.set_conn_handler(Uploader)
    cid = client.connect_to("127.0.0.1", PORT)
conn = client.active_connections[cid]
conn.job = (SOURCE, DESTINATION)
getattr(conn, "_connection_loop_thread", conn).join(120)  # 3.0 keeps its thread aside
print(json.dumps(conn.report))
""".replace("HERE", repr(str(HERE)))
)


@pytest.fixture
def source_file(tmp_path: Path) -> tuple[Path, str]:
    data = hashlib.sha256(b"seed").digest() * (FILE_SIZE // 32 + 1)
    path = tmp_path / "source.bin"
    path.write_bytes(data[:FILE_SIZE])
    return path, hashlib.sha256(data[:FILE_SIZE]).hexdigest()


def upload_with_our_client(port: int, source: Path, destination: Path) -> Any:
    from .transfer_app import connection_classes

    uploader, _ = connection_classes(TinyProtoConnection)
    client = TinyProtoClient()
    client.set_conn_handler(uploader)
    conn = client.active_connections[client.connect_to("127.0.0.1", port)]
    conn.job = (str(source), str(destination))
    conn.join(120)
    assert not conn.is_alive()
    assert conn.socket_o.gettimeout() == 90.0  # what its pre_loop set
    return conn.report


def expect_saved(report: Any, destination: Path, digest: str) -> None:
    assert report == {"type": "saved", "size": FILE_SIZE, "sha256": digest}
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == digest


@pytest.fixture
def our_transfer_server() -> Iterator[Ready]:
    from .transfer_app import connection_classes

    _, receiver = connection_classes(TinyProtoConnection)
    server = Ready()
    server.set_conn_handler(receiver)
    server.add_addr("127.0.0.1", 0)
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    yield server
    server.shutdown = True
    thread.join(30)


def test_a_tpft_transfer_from_our_client_to_our_server(
    our_transfer_server: Ready, source_file: tuple[Path, str], tmp_path: Path
) -> None:
    source, digest = source_file
    destination = tmp_path / "received.bin"
    report = upload_with_our_client(our_transfer_server.ports[0], source, destination)
    expect_saved(report, destination, digest)


def test_a_tpft_transfer_from_our_client_to_the_original_server(
    original: Path, source_file: tuple[Path, str], tmp_path: Path
) -> None:
    server = start_transfer_server(original)
    try:
        source, digest = source_file
        destination = tmp_path / "received.bin"
        report = upload_with_our_client(server.port, source, destination)
        expect_saved(report, destination, digest)
    finally:
        finish(server)


def test_a_tpft_transfer_from_the_original_client_to_our_server(
    original: Path,
    our_transfer_server: Ready,
    source_file: tuple[Path, str],
    tmp_path: Path,
) -> None:
    source, digest = source_file
    destination = tmp_path / "received.bin"
    code = (
        ORIGINAL_TRANSFER_CLIENT.replace("PORT", str(our_transfer_server.ports[0]))
        .replace("SOURCE", repr(str(source)))
        .replace("DESTINATION", repr(str(destination)))
    )
    result = run_python(code, pythonpath=original, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    expect_saved(json.loads(result.stdout.splitlines()[-1]), destination, digest)


def start_transfer_server(target: Path) -> ServerProcess:
    import sys

    return ServerProcess(
        [sys.executable, "-c", ORIGINAL_TRANSFER_SERVER],
        env={"PYTHONPATH": str(target)},
        cwd=target,
    )
