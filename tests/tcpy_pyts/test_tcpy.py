"""rawproto.tcpy end to end: real servers on loopback, real sockets, the seed as written."""

from __future__ import annotations

import ast
import signal
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from dataserve.core import errors
from dataserve.core.limits import Limits
from rawproto.tcpy import TCPClient, TCPHandler, TCPServer
from tests.tcpy_pyts.helpers import (
    TIMEOUT,
    Process,
    doc_python_blocks,
    raw_connect,
    recv_exactly,
    recv_until_eof,
    refused_port,
    write_module,
)

# {"cmd": "add", "x": 1, "y": 2} and {"success": True, "solution": 3}, by hand.
ADD_REQUEST = b"\x00\x00\x00\x0f\x83\xa3cmd\xa3add\xa1x\x01\xa1y\x02"
ADD_REPLY = b"\x00\x00\x00\x14\x82\xa7success\xc3\xa8solution\x03"


class AdditionHandler(TCPHandler):
    # As in the seed: no super().__init__() call.
    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    def execute(self) -> dict[str, Any]:
        return self.success(solution=self.x + self.y)


class Boom(TCPHandler):
    def execute(self) -> dict[str, Any]:
        raise ValueError("the handler's own message")


class Chat(TCPHandler):
    """Converses: sends a question, waits for the answer, then replies."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)

    def execute(self) -> dict[str, Any]:
        self.send({"question": "how many?"})
        answer = self.recv()
        self.send({"progress": 50})
        return self.success(got=answer)


class ChatNoSuper(TCPHandler):
    def __init__(self) -> None:
        pass

    def execute(self) -> dict[str, Any]:
        self.send({"hello": True})
        return self.success(echo=self.recv())


class Untyped(TCPHandler):
    def execute(self) -> dict[str, Any]:
        return [1, 2]  # type: ignore[return-value]


def plain_function(a: int) -> dict[str, Any]:
    return {"double": 2 * a}


COMMANDS: dict[str, Any] = {
    "add": AdditionHandler,
    "boom": Boom,
    "chat": Chat,
    "chat2": ChatNoSuper,
    "untyped": Untyped,
    "double": plain_function,
}


@pytest.fixture
def server() -> Iterator[TCPServer]:
    srv = TCPServer(host="127.0.0.1", port=0, commands=dict(COMMANDS)).start()
    yield srv
    srv.stop()


def client(server: TCPServer) -> TCPClient:
    return TCPClient("127.0.0.1", server.port, timeout=TIMEOUT)


# --- the seed, as written -------------------------------------------------------------

# docs/tcpy.md shows the seed's example as written (import line aside): run that.
SEED_SERVER, SEED_CLIENT = doc_python_blocks("tcpy.md")[:2]


def test_the_seed_example_runs_as_written(tmp_path: Path) -> None:
    write_module(tmp_path, "seed_server", SEED_SERVER)
    write_module(tmp_path, "seed_client", SEED_CLIENT)
    srv = Process(["seed_server.py"], tmp_path)
    try:
        assert srv.readline().strip() == "TCPServer is listening at localhost:7272!"
        cli = Process(["seed_client.py"], tmp_path)
        code, out, err = cli.wait()
        assert code == 0, err
        # the seed shows {'solution': 3, 'success': True}: the same dict
        assert ast.literal_eval(out.strip()) == {"solution": 3, "success": True}
        srv.signal(signal.SIGTERM)
        code, _, err = srv.wait()
        assert code == 0, err
    finally:
        srv.kill()


# --- the wire, by hand -----------------------------------------------------------------


def test_the_wire_spoken_by_hand_from_bytes(server: TCPServer) -> None:
    with raw_connect(server.port) as sock:
        for _ in range(2):  # many requests on one connection
            sock.sendall(ADD_REQUEST)
            assert recv_exactly(sock, len(ADD_REPLY)) == ADD_REPLY
        # one request split across writes, and two requests in one write
        sock.sendall(ADD_REQUEST[:3])
        sock.sendall(ADD_REQUEST[3:9])
        sock.sendall(ADD_REQUEST[9:] + ADD_REQUEST)
        assert recv_exactly(sock, 2 * len(ADD_REPLY)) == ADD_REPLY * 2


def test_a_client_written_like_the_original_works() -> None:
    """The original client: connect, 4-byte prefix + packb, read one reply, close."""
    srv = TCPServer(host="127.0.0.1", port=0, commands=dict(COMMANDS)).start()
    try:
        for x in range(3):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as sock:
                msg = msgpack.packb({"x": x, "y": 2, "cmd": "add"})
                sock.sendall(struct.pack(">I", len(msg)))
                sock.sendall(msg)
                (length,) = struct.unpack(">I", recv_exactly(sock, 4))
                reply = msgpack.unpackb(recv_exactly(sock, length))
                sock.shutdown(socket.SHUT_RDWR)
            assert reply == {"success": True, "solution": x + 2}
    finally:
        srv.stop()


def test_our_client_works_against_a_server_written_like_the_original() -> None:
    """The original server: read one message, run the handler, reply, close."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                (length,) = struct.unpack(">I", recv_exactly(conn, 4))
                data = msgpack.unpackb(recv_exactly(conn, length))
                reply = msgpack.packb({"success": True, "solution": data["x"] + data["y"]})
                conn.sendall(struct.pack(">I", len(reply)))
                conn.sendall(reply)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    try:
        tcpy = TCPClient("127.0.0.1", port, timeout=TIMEOUT)
        assert tcpy.execute(cmd="add", x=1, y=2) == {"success": True, "solution": 3}
        assert not tcpy.connected  # one connection per request, like the original
        assert tcpy.execute(cmd="add", x=5, y=2) == {"success": True, "solution": 7}
        thread.join(TIMEOUT)
    finally:
        listener.close()


# --- requests and replies ----------------------------------------------------------------


def test_many_requests_on_one_connection(server: TCPServer) -> None:
    with client(server) as tcpy:
        for i in range(20):
            assert tcpy.execute(cmd="add", x=i, y=1) == {"success": True, "solution": i + 1}
        assert tcpy.execute(cmd="double", a=21) == {"double": 42}


@pytest.mark.parametrize(
    ("cmd", "params", "message"),
    [
        ("nope", {}, "unknown command 'nope' (this server has: add, boom, chat"),
        ("__class__", {}, "unknown command '__class__'"),  # T18: a dispatch table, no getattr
        ("add", {"x": 1}, "command 'add': missing parameter y"),
        ("add", {}, "command 'add': missing parameters x, y"),
        ("add", {"x": 1, "y": 2, "z": 3}, "command 'add': unexpected parameter z"),
        # The exception's type, never its text (it may hold anything): the server logs it.
        ("boom", {}, "command 'boom' raised ValueError (see the server log)"),
        ("untyped", {}, "command 'untyped' returned a list, not a dict"),
    ],
)
def test_errors_are_replies_and_the_connection_stays_usable(
    server: TCPServer, cmd: str, params: dict[str, Any], message: str
) -> None:
    with client(server) as tcpy:
        reply = tcpy.execute(cmd, **params)
        assert reply["error"] is True
        assert message in reply["message"]
        assert tcpy.execute(cmd="add", x=1, y=2) == {"success": True, "solution": 3}


def test_a_map_without_cmd_is_an_error_reply_and_the_connection_stays(server: TCPServer) -> None:
    with client(server) as tcpy:
        tcpy.send({"x": 1})
        assert tcpy.recv() == {"error": True, "message": 'the request has no "cmd"'}
        assert tcpy.execute(cmd="add", x=1, y=2)["solution"] == 3


def test_handlers_converse_with_send_and_recv(server: TCPServer) -> None:
    with client(server) as tcpy:
        tcpy.send({"cmd": "chat"})
        assert tcpy.recv() == {"question": "how many?"}
        tcpy.send({"answer": 42})
        assert tcpy.recv() == {"progress": 50}
        assert tcpy.recv() == {"success": True, "got": {"answer": 42}}
        # a handler that never called super().__init__() converses too
        tcpy.send({"cmd": "chat2"})
        assert tcpy.recv() == {"hello": True}
        tcpy.send({"n": 1})
        assert tcpy.recv() == {"success": True, "echo": {"n": 1}}
        assert tcpy.execute(cmd="add", x=1, y=2)["solution"] == 3


def test_a_request_sent_while_a_handler_runs_waits_its_turn(server: TCPServer) -> None:
    with raw_connect(server.port) as sock:
        add = msgpack.packb({"cmd": "add", "x": 2, "y": 2})
        # the chat request and the next request arrive together
        chat = msgpack.packb({"cmd": "chat"})
        sock.sendall(struct.pack(">I", len(chat)) + chat)
        (n,) = struct.unpack(">I", recv_exactly(sock, 4))
        assert msgpack.unpackb(recv_exactly(sock, n)) == {"question": "how many?"}
        answer = msgpack.packb({"answer": 1})
        sock.sendall(struct.pack(">I", len(answer)) + answer + struct.pack(">I", len(add)) + add)
        replies = []
        for _ in range(3):
            (n,) = struct.unpack(">I", recv_exactly(sock, 4))
            replies.append(msgpack.unpackb(recv_exactly(sock, n)))
        assert replies == [
            {"progress": 50},
            {"success": True, "got": {"answer": 1}},
            {"success": True, "solution": 4},
        ]


def test_datetimes_cross_the_wire() -> None:
    import datetime

    class Now(TCPHandler):
        def __init__(self, when: datetime.datetime) -> None:
            self.when = when

        def execute(self) -> dict[str, Any]:
            return self.success(later=self.when + datetime.timedelta(days=1))

    with TCPServer(host="127.0.0.1", port=0, commands={"now": Now}) as srv:
        when = datetime.datetime(2014, 5, 16, 10, 0, 0, 5)
        reply = TCPClient("127.0.0.1", srv.port, timeout=TIMEOUT).execute("now", when=when)
        assert reply == {"success": True, "later": when + datetime.timedelta(days=1)}


def test_threads_bounds_how_many_handlers_run_at_once() -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]
    release = threading.Event()

    class Slow(TCPHandler):
        def execute(self) -> dict[str, Any]:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                if running[0] == 2:
                    release.set()
            release.wait(TIMEOUT)
            with lock:
                running[0] -= 1
            return self.success()

    with TCPServer(host="127.0.0.1", port=0, commands={"slow": Slow}, threads=2) as srv:
        results: list[Any] = []

        def call() -> None:
            results.append(TCPClient("127.0.0.1", srv.port, timeout=TIMEOUT).execute("slow"))

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
    assert results == [{"success": True}] * 6
    assert peak[0] == 2  # two ran together (the release needs both), never more


# --- bad input: an answer, the right connection handling, everyone else served -------------


def _error_then_eof(sock: socket.socket) -> dict[str, Any]:
    data = recv_until_eof(sock)
    (n,) = struct.unpack(">I", data[:4])
    assert len(data) == 4 + n, "one error reply, then the server closed"
    reply: dict[str, Any] = msgpack.unpackb(data[4:])
    return reply


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (b"\xc1", "malformed msgpack"),  # T11
        (msgpack.packb({"cmd": "add"}) + b"\x00", "bytes left over"),  # T12
        # T13: over the budget for structures, before anything is built
        (
            b"\xdd\xff\xff\xff\xff\x00",
            "msgpack array of 4294967295 items is over the limit of 65536 items per array "
            "or map (max_container_len)",
        ),
        (b"\x91" * 100_000, "nested deeper"),  # T14
        (b"\x81\x01\x02", "not allowed for map key"),  # T15
        (b"\xd4\x05\x00", "extension type 5"),  # T16
        (b"\xa2\xff\xfe", "not a bytes"),  # T17: raw that is not UTF-8 is bytes (Python 2)
        (b"\x80\x04\x95\x00", "malformed msgpack"),  # T21: a pickle is never unpickled
        (msgpack.packb([1, 2]), "a tcpy request is a msgpack map, not an array"),
    ],
)
def test_malformed_messages_get_an_error_reply_then_close(
    server: TCPServer, payload: bytes, text: str
) -> None:
    with raw_connect(server.port) as sock:
        sock.sendall(struct.pack(">I", len(payload)) + payload)
        reply = _error_then_eof(sock)
    assert reply["error"] is True
    assert text in reply["message"]
    assert client(server).execute(cmd="add", x=1, y=2)["solution"] == 3  # still serving


@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
def test_a_huge_length_is_refused_before_the_payload(data: bytes) -> None:
    limits = Limits(max_frame_size=1024 * 1024)
    with TCPServer(host="127.0.0.1", port=0, commands=dict(COMMANDS), limits=limits) as srv:
        with raw_connect(srv.port) as sock:
            sock.sendall(data)  # T2, T9: no payload follows
            reply = _error_then_eof(sock)
        assert "exceeds the limit of 1048576 bytes" in reply["message"]
        assert TCPClient("127.0.0.1", srv.port).execute("add", x=1, y=1)["solution"] == 2


def test_a_stalled_or_cut_message_is_timed_out_or_dropped_and_others_are_served() -> None:
    limits = Limits(frame_timeout=0.3)
    with TCPServer(host="127.0.0.1", port=0, commands=dict(COMMANDS), limits=limits) as srv:
        stalled = raw_connect(srv.port)
        stalled.sendall(ADD_REQUEST[:7])  # T5: header and a little, then nothing
        cut = raw_connect(srv.port)
        cut.sendall(ADD_REQUEST[:2])  # T4: half a header, then FIN
        cut.shutdown(socket.SHUT_WR)
        assert TCPClient("127.0.0.1", srv.port).execute("add", x=2, y=3)["solution"] == 5
        # nothing was applied; a peer that only shut its sending side reads why
        assert "closed after 2 of a message's 4 length bytes" in _error_then_eof(cut)["message"]
        reply = _error_then_eof(stalled)  # closed at the frame deadline
        assert "not complete within 0.3 s" in reply["message"]
        stalled.close()
        cut.close()


def test_idle_connections_and_the_connection_limit() -> None:
    limits = Limits(idle_timeout=0.3, max_connections=1)
    with TCPServer(host="127.0.0.1", port=0, commands=dict(COMMANDS), limits=limits) as srv:
        with raw_connect(srv.port) as first:
            first.sendall(ADD_REQUEST)
            assert recv_exactly(first, len(ADD_REPLY)) == ADD_REPLY  # first is in
            with raw_connect(srv.port) as second:  # T29: over the limit
                assert "limit of 1 connections" in _error_then_eof(second)["message"]
            # T7: the first, now idle, is answered and closed at the idle timeout
            assert "idle for 0.3 s" in _error_then_eof(first)["message"]
        assert TCPClient("127.0.0.1", srv.port).execute("add", x=1, y=1)["solution"] == 2


# --- the client's errors ---------------------------------------------------------------------


def test_client_errors_name_the_server() -> None:
    with refused_port() as port, pytest.raises(errors.ConnectError, match=f"127.0.0.1:{port}"):
        TCPClient("127.0.0.1", port).execute("add")

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        with pytest.raises(errors.TimeoutError, match="within 0.2 s"):
            TCPClient("127.0.0.1", port, timeout=0.2).execute("add")  # accepted, never answered
    finally:
        listener.close()

    with pytest.raises(errors.ConnectionClosed):
        TCPClient("127.0.0.1", port).recv()


def test_the_client_reports_a_server_that_closes_without_answering() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def close_at_once() -> None:
        conn, _ = listener.accept()
        recv_exactly(conn, len(ADD_REQUEST))
        conn.close()

    thread = threading.Thread(target=close_at_once, daemon=True)
    thread.start()
    try:
        with pytest.raises(errors.ConnectionClosed, match="closed the connection"):
            TCPClient("127.0.0.1", port, timeout=TIMEOUT).execute("add", x=1, y=2)
    finally:
        thread.join(TIMEOUT)
        listener.close()


# --- listen(): Ctrl-C and SIGTERM stop it cleanly, letting a running handler finish ----------

SLOW_SERVER = """
import sys, time
from rawproto.tcpy import TCPServer, TCPHandler

class Slow(TCPHandler):
    def execute(self):
        print("started", flush=True)
        time.sleep(0.5)  # sleep-ok: a handler still running when the signal arrives
        return self.success(done=True)

server = TCPServer(host="127.0.0.1", port=0, commands={"slow": Slow})
server.listen()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_listen_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    write_module(tmp_path, "slow_server", SLOW_SERVER)
    srv = Process(["slow_server.py"], tmp_path)
    try:
        port = int(srv.readline().strip().rstrip("!").rsplit(":", 1)[1])
        results: list[Any] = []
        caller = threading.Thread(
            target=lambda: results.append(
                TCPClient("127.0.0.1", port, timeout=TIMEOUT).execute("slow")
            )
        )
        caller.start()
        assert srv.readline().strip() == "started"
        srv.signal(sig)
        caller.join(TIMEOUT)
        assert results == [{"success": True, "done": True}]  # the running handler finished
        code, out, err = srv.wait()
        assert code == 0, err
        assert out.strip() == "stopped"
        assert "Traceback" not in err
        with pytest.raises(errors.ConnectError):
            TCPClient("127.0.0.1", port).execute("slow")
    finally:
        srv.kill()


def test_rawproto_serve_tcpy_runs_a_module_server(tmp_path: Path) -> None:
    write_module(tmp_path, "seed_server", SEED_SERVER)
    srv = Process(
        ["-m", "rawproto", "serve", "tcpy", "seed_server:server", "--port", "0"], tmp_path
    )
    try:
        line = srv.readline()
        assert line.startswith("TCPServer is listening at localhost:")
        port = int(line.strip().rstrip("!").rsplit(":", 1)[1])
        assert TCPClient("localhost", port).execute("add", x=1, y=2)["solution"] == 3
        srv.signal(signal.SIGTERM)
        assert srv.wait()[0] == 0
    finally:
        srv.kill()


MEETING_SERVER = """
import threading
from rawproto.tcpy import TCPServer, TCPHandler

# Every handler waits here until 8 are running at once: with fewer threads
# the barrier breaks after its timeout and the handlers raise.
meeting = threading.Barrier(8, timeout=20)

class Meet(TCPHandler):
    def execute(self):
        return self.success(arrived=meeting.wait())

server = TCPServer(host="127.0.0.1", port=0, commands={"meet": Meet})
"""


@pytest.mark.parametrize("flag", ["--handler-threads", "--threads"])
def test_rawproto_serve_runs_as_many_handlers_at_once_as_asked(tmp_path: Path, flag: str) -> None:
    write_module(tmp_path, "meeting_server", MEETING_SERVER)
    args = ["-m", "rawproto", "serve", "tcpy", "meeting_server:server", "--port", "0", flag, "8"]
    srv = Process(args, tmp_path)
    try:
        port = int(srv.readline().strip().rstrip("!").rsplit(":", 1)[1])
        replies: list[Any] = []

        def call() -> None:
            replies.append(TCPClient("127.0.0.1", port, timeout=60).execute("meet"))

        callers = [threading.Thread(target=call) for _ in range(8)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(60)
        assert all(reply.get("success") for reply in replies), replies
        # Eight handlers were inside execute() at the same time.
        assert sorted(reply["arrived"] for reply in replies) == list(range(8))
        srv.signal(signal.SIGTERM)
        assert srv.wait()[0] == 0
    finally:
        srv.kill()


def test_threads_is_the_handler_threads_limit() -> None:
    server = TCPServer(threads=2, limits=Limits(handler_timeout=5))
    assert server.limits == Limits(handler_timeout=5, handler_threads=2)
    server.limits = server.limits.replace(handler_threads=8)  # as `rawproto serve` does
    assert server.threads == 8
    server.threads = 3
    assert server.limits.handler_threads == 3 and server.limits.handler_timeout == 5
    assert TCPServer().threads == 4  # tcpy's default, whatever Limits says


def test_rawproto_serve_explains_a_bad_target(tmp_path: Path) -> None:
    write_module(tmp_path, "not_a_server", "server = 42\n")
    for target, text in [
        ("not_a_server:server", "is a int, not a rawproto.tcpy.TCPServer"),
        ("missing_module:server", "cannot import module 'missing_module'"),
        ("not_a_server:nope", "has no attribute 'nope'"),
        ("no_colon", "MODULE:ATTR"),
    ]:
        code, _, err = Process(["-m", "rawproto", "serve", "tcpy", target], tmp_path).wait()
        assert code == 2
        assert text in err, err


def test_the_client_is_usable_as_the_original_documents() -> None:
    """connect(), send(), recv(), disconnect() in the order the seed's docs give."""
    with TCPServer(host="127.0.0.1", port=0, commands=dict(COMMANDS)) as srv:
        tcpy = TCPClient("127.0.0.1", srv.port)
        tcpy.connect()
        tcpy.send({"cmd": "add", "x": 3, "y": 4})
        assert tcpy.recv() == {"success": True, "solution": 7}
        tcpy.disconnect()
        assert not tcpy.connected
        tcpy.send({"cmd": "add", "x": 1, "y": 1})  # send() connects again
        assert tcpy.recv()["solution"] == 2
        tcpy.disconnect()
