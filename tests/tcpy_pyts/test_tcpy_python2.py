"""tcpy and Python 2: a ``str`` packed with msgpack's old raw type (no bin type).

Python 2's tcpy sends binary data as raw that is not UTF-8. Such raw arrives
as ``bytes`` (raw that is UTF-8 stays a ``str``), on the server and on the
client, from the sans-IO protocol up. Every frame here is built with
``msgpack.packb(..., use_bin_type=False)``, as Python 2's msgpack packs.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from rawproto.proto.tcpy import Connection, Message, Request, Role
from rawproto.tcpy import TCPClient, TCPHandler, TCPServer
from tests.tcpy_pyts.helpers import TIMEOUT, raw_connect, recv_exactly

BINARY = bytes(range(256))  # never UTF-8
TEXT = "Zürich ✓"


def py2_frame(value: Any) -> bytes:
    payload = msgpack.packb(value, use_bin_type=False)
    return struct.pack(">I", len(payload)) + payload


def read_reply(sock: socket.socket) -> Any:
    (n,) = struct.unpack(">I", recv_exactly(sock, 4))
    return msgpack.unpackb(recv_exactly(sock, n))


# --- the sans-IO protocol -----------------------------------------------------------


def test_raw_that_is_not_utf8_is_bytes_and_utf8_raw_is_str() -> None:
    server = Connection(Role.SERVER)
    request = {
        "cmd": "store",
        "blob": BINARY,
        "name": TEXT.encode("utf-8"),
        "latin1": "café".encode("latin-1"),
        "nested": [b"\xff", {b"\xfe\xfd": [b"ok", b"\x80"]}, 3],
    }
    frame = py2_frame(request)
    for chunk in (frame[i : i + 1] for i in range(len(frame))):  # a byte at a time
        server.receive_data(chunk)
    event = server.next_event()
    assert event == Request(
        "store",
        {
            "blob": BINARY,
            "name": TEXT,
            "latin1": b"caf\xe9",
            "nested": [b"\xff", {b"\xfe\xfd": ["ok", b"\x80"]}, 3],
        },
    )
    assert type(event.params["name"]) is str


def test_a_reply_with_binary_raw_reaches_the_client_as_bytes() -> None:
    client = Connection(Role.CLIENT)
    client.receive_data(py2_frame({"success": True, "data": BINARY, "note": b"plain"}))
    assert client.next_event() == Message({"success": True, "data": BINARY, "note": "plain"})


def test_a_key_that_is_not_utf8_is_named_in_the_error_and_the_connection_goes_on() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(py2_frame({"cmd": "add", b"\xff": 1}) + py2_frame({"cmd": "add"}))
    with pytest.raises(Exception, match=r"parameter names must be strings, not b'\\xff'"):
        server.next_event()
    server.error_reply(Exception())  # answered; the next request is read as usual
    assert server.next_event() == Request("add", {})


def test_a_binary_raw_cmd_is_refused_with_what_it_was() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(py2_frame({"cmd": b"\xff"}))
    with pytest.raises(Exception, match=r'"cmd" must be a non-empty string, not b\'\\xff\''):
        server.next_event()


# --- a server and a client over loopback ----------------------------------------------


class Store(TCPHandler):
    def __init__(self, blob: Any, name: Any) -> None:
        self.blob = blob
        self.name = name

    def execute(self) -> dict[str, Any]:
        return self.success(
            blob_type=type(self.blob).__name__,
            size=len(self.blob),
            name=self.name,
            back=self.blob,
        )


@pytest.fixture
def server() -> Iterator[TCPServer]:
    srv = TCPServer(host="127.0.0.1", port=0, commands={"store": Store}).start()
    yield srv
    srv.stop()


def test_our_server_takes_a_python_2_request_with_binary_data(server: TCPServer) -> None:
    with raw_connect(server.port) as sock:
        sock.sendall(py2_frame({"cmd": "store", "blob": BINARY, "name": TEXT.encode()}))
        reply = read_reply(sock)
        assert reply == {
            "success": True,
            "blob_type": "bytes",
            "size": 256,
            "name": TEXT,
            "back": BINARY,
        }
        # The connection goes on: the next request is served too.
        sock.sendall(py2_frame({"cmd": "store", "blob": b"\xff", "name": b"x"}))
        assert read_reply(sock)["back"] == b"\xff"


def test_our_client_takes_a_python_2_reply_with_binary_data() -> None:
    """A server that answers as Python 2's tcpy does: raw, not UTF-8."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[Any] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            (n,) = struct.unpack(">I", recv_exactly(conn, 4))
            seen.append(msgpack.unpackb(recv_exactly(conn, n)))
            conn.sendall(py2_frame({"success": True, "data": BINARY, "text": TEXT.encode()}))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = TCPClient("127.0.0.1", listener.getsockname()[1], timeout=TIMEOUT)
        reply = client.execute("fetch", key="k")
    finally:
        thread.join(TIMEOUT)
        listener.close()
    assert seen == [{"cmd": "fetch", "key": "k"}]
    assert reply == {"success": True, "data": BINARY, "text": TEXT}
