"""rawproto.pyts end to end: real servers on loopback, real sockets, the seed as written."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataserve.core import errors
from dataserve.core.errors import LocalProtocolError
from dataserve.core.limits import Limits
from rawproto.pyts import Request, Response, Server
from tests.tcpy_pyts.helpers import (
    TIMEOUT,
    Process,
    doc_python_blocks,
    raw_connect,
    recv_until_eof,
    refused_port,
    write_module,
)


def request_bytes(port: int, endpoint: str = "/", body: Any = None) -> bytes:
    """What the original client sends, written out as json.dumps writes it."""
    return (
        '{"headers": {"VERSION": "PYTS/1.0.0", "type": "REQUEST", '
        f'"REQUEST-URL": "pytf://127.0.0.1:{port}{endpoint}", "HOST": "127.0.0.1", '
        f'"PORT": {port}, "ENDPOINT": "{endpoint}", "TEST-HEADER": true}}, '
        f'"body": {json.dumps({"test": True} if body is None else body)}}}'
    ).encode()


INDEX_RESPONSE = (
    b'{"headers": {"VERSION": "PYTS/1.0.0", "type": "RESPONSE", "STATUS-TEXT": "OK", '
    b'"STATUS-CODE": 200, "STATUS": "200 OK"}, "body": "<1>Index page</1>"}'
)


def index(request: Request, resp: Response) -> None:
    resp.setStatus(200, "OK")
    resp.setBody("<1>Index page</1>")
    resp.SendResponse()


SEEN: list[Any] = []
TWICE_DONE = threading.Event()


def twice(request: Request, resp: Response) -> None:
    resp.setStatus(201, "Created")
    resp.SendResponse()
    try:
        resp.SendResponse()
    except LocalProtocolError as exc:
        SEEN.append(exc)
    TWICE_DONE.set()


def set_but_not_sent(request: Request, resp: Response) -> None:
    resp.setHeader("X-ECHO", request.Headers["TEST-HEADER"])
    resp.setBody({"echo": request.Body})


def nothing(request: Request, resp: Response) -> None:
    pass


def boom(request: Request, resp: Response) -> None:
    raise ValueError("the handler's own message")


def item(request: Request, resp: Response) -> None:
    resp.setStatus(200, "OK")
    resp.setBody({"id": request.params["id"], "endpoint": request.ENDPOINT})


async def asynchronous(request: Request, resp: Response) -> None:
    resp.setStatus(202, "Accepted")
    resp.SendResponse()


ROUTES = {
    "/": index,
    "/twice": twice,
    "/set": set_but_not_sent,
    "/nothing": nothing,
    "/boom": boom,
    "/items/{id}": item,
    "/async": asynchronous,
}


@pytest.fixture
def app() -> Iterator[Server]:
    server = Server("127.0.0.1", 0)
    for endpoint, handler in ROUTES.items():
        server.routeHandler(endpoint, handler)
    server.start()
    yield server
    server.stop()


def send(app: Server, endpoint: str, body: Any = None) -> Response:
    req = Request("127.0.0.1", app.PORT, endpoint, timeout=TIMEOUT)
    req.setHeader("TEST-HEADER", True)
    req.setBody({"test": True} if body is None else body)
    return req.SendRequest()


# --- the seed's examples, as written -----------------------------------------------------

# docs/pyts.md shows the seed's examples with HOST, PORT and ENDPOINT filled in.
SEED_SERVER, SEED_CLIENT = doc_python_blocks("pyts.md")[:2]


def test_the_seed_examples_run_as_written(tmp_path: Path) -> None:
    # only the port differs: the server picks a free one, the client is told it
    write_module(tmp_path, "seed_server", SEED_SERVER.replace("3000", "0"))
    srv = Process(["seed_server.py"], tmp_path)
    try:
        line = srv.readline().strip()
        assert line.startswith("INFO:: Server started; 127.0.0.1:")
        port = line.rsplit(":", 1)[1]
        write_module(tmp_path, "seed_client", SEED_CLIENT.replace("3000", port))
        code, out, err = Process(["seed_client.py"], tmp_path).wait()
        assert code == 0, err
        assert out.splitlines() == ["200", "<1>Index page</1>"]
        srv.signal(signal.SIGTERM)
        assert srv.wait()[0] == 0
    finally:
        srv.kill()


# --- the wire, by hand, and the original's peers --------------------------------------------


def test_the_wire_spoken_by_hand_from_bytes(app: Server) -> None:
    with raw_connect(app.PORT) as sock:
        sock.sendall(request_bytes(app.PORT))  # no delimiter, no EOF: it is complete
        assert recv_until_eof(sock) == INDEX_RESPONSE


def test_a_request_trickled_byte_by_byte_is_answered(app: Server) -> None:
    with raw_connect(app.PORT) as sock:
        for byte in request_bytes(app.PORT):
            sock.sendall(bytes([byte]))
        assert recv_until_eof(sock) == INDEX_RESPONSE


def test_a_client_written_like_the_original_works(app: Server) -> None:
    """The original client: sendall, one recv(1024), json.loads, read the status headers."""
    with socket.create_connection(("127.0.0.1", app.PORT), timeout=TIMEOUT) as s:
        s.sendall(request_bytes(app.PORT))
        data = s.recv(1024)
    doc = json.loads(data)
    assert (doc["headers"]["STATUS-CODE"], doc["headers"]["STATUS-TEXT"]) == (200, "OK")
    assert doc["body"] == "<1>Index page</1>"


def test_our_client_works_against_a_server_written_like_the_original() -> None:
    """The original server: one recv(1024), route on ENDPOINT, sendall the answer, close."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                data = conn.recv(1024)
                received.append(data)
                request = json.loads(data)
                endpoint = request["headers"]["ENDPOINT"]
                headers: dict[str, Any] = {"VERSION": "PYTS/1.0.0", "type": "RESPONSE"}
                if endpoint == "/":
                    headers.update({"STATUS-TEXT": "OK", "STATUS-CODE": 200, "STATUS": "200 OK"})
                    body: Any = {"you sent": request["body"]}
                else:
                    headers.update(
                        {"STATUS-TEXT": "Not Found", "STATUS-CODE": 404, "STATUS": "404 Not Found"}
                    )
                    body = f"{endpoint} was not found on this server. (404 Not Found)"
                conn.sendall(bytes(json.dumps({"headers": headers, "body": body}), "utf-8"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        req = Request("127.0.0.1", port, "/", timeout=TIMEOUT)
        req.setHeader("TEST-HEADER", True)
        req.setBody({"test": True})
        response = req.SendRequest()
        assert received[0] == request_bytes(port)  # byte for byte what the original sends
        assert (response.StatusCode, response.StatusText) == (200, "OK")
        assert response.Body == {"you sent": {"test": True}}
        assert response.Headers["STATUS"] == "200 OK"
        assert response.Headers.getHeaders() is response.Headers
        missing = Request("127.0.0.1", port, "/x", timeout=TIMEOUT).SendRequest()
        assert missing.StatusCode == 404
        assert missing.Body == "/x was not found on this server. (404 Not Found)"
        thread.join(TIMEOUT)
    finally:
        listener.close()


# --- what the issue asks beyond the original ------------------------------------------------


def test_ten_mebibyte_requests_and_responses(app: Server) -> None:
    big = "x" * (10 * 1024 * 1024)
    response = send(app, "/set", big)
    assert response.StatusCode == 200
    assert response.Body == {"echo": big}


def test_concurrent_clients_are_served_concurrently() -> None:
    # Each handler waits for the other: this passes only if both run at once.
    barrier = threading.Barrier(2, timeout=TIMEOUT)

    def meet(request: Request, resp: Response) -> None:
        barrier.wait()
        resp.setStatus(200, "OK")
        resp.SendResponse()

    server = Server("127.0.0.1", 0)
    server.routeHandler("/meet", meet)
    with server:
        results: list[int] = []

        def call() -> None:
            results.append(send(server, "/meet").StatusCode)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
    assert results == [200, 200]


def test_a_handler_that_does_not_send_still_answers(app: Server) -> None:
    response = send(app, "/set", {"a": 1})
    assert (response.StatusCode, response.StatusText) == (200, "OK")
    assert response.Headers["X-ECHO"] is True
    assert response.Body == {"echo": {"a": 1}}
    response = send(app, "/nothing")
    assert response.StatusCode == 500
    assert "without setting or sending a response" in response.Body


def test_send_response_twice_raises_in_the_handler(app: Server) -> None:
    SEEN.clear()
    TWICE_DONE.clear()
    response = send(app, "/twice")
    assert (response.StatusCode, response.StatusText) == (201, "Created")
    # the client has its answer before the handler's second call: wait for the handler
    assert TWICE_DONE.wait(TIMEOUT)
    assert len(SEEN) == 1
    assert "already sent" in str(SEEN[0])


def test_a_raising_handler_gets_500_and_the_server_keeps_serving(app: Server) -> None:
    response = send(app, "/boom")
    assert response.StatusCode == 500
    # The exception's type, never its text (it may hold anything): the server logs it.
    assert response.Body == "the handler raised ValueError for /boom (see the server log)"
    assert send(app, "/").StatusCode == 200


def test_unknown_endpoint_gets_the_404_document(app: Server) -> None:
    with raw_connect(app.PORT) as sock:
        sock.sendall(request_bytes(app.PORT, "/nope"))
        assert recv_until_eof(sock) == (
            b'{"headers": {"VERSION": "PYTS/1.0.0", "type": "RESPONSE", '
            b'"STATUS-TEXT": "Not Found", "STATUS-CODE": 404, "STATUS": "404 Not Found"}, '
            b'"body": "/nope was not found on this server. (404 Not Found)"}'
        )


def test_routes_are_router_templates_and_async_handlers_work(app: Server) -> None:
    response = send(app, "/items/42")
    assert response.Body == {"id": "42", "endpoint": "/items/42"}
    assert send(app, "/async").StatusCode == 202


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b'{"headers": {oops}, "body": 1}', "invalid JSON"),  # T22
        (b'{"headers": {"VERSION": "PYTS/1.0.0"}, "body": 1}', "missing the headers"),
        (b'{"headers": {"HOST": "h", "PORT": 1, "ENDPOINT": "/"}}', 'has no "body"'),
        (b'[{"headers": {}}]', "a document is a JSON object"),  # T22
        (b'{"headers": {"HOST": 1, "PORT": 1, "ENDPOINT": "/"}, "body": NaN}', "NaN"),
        (b'{"body": ' + b"[" * 100_000, "deeper than 64 levels"),  # T23
        (
            b'{"headers": {"HOST": 1, "PORT": 1, "ENDPOINT": "/"}, "body": 1' + b"0" * 5000 + b"}",
            "invalid JSON",
        ),  # T23: Python's integer-digit limit
    ],
)
def test_bad_documents_get_a_400_document(app: Server, data: bytes, text: str) -> None:
    with raw_connect(app.PORT) as sock:
        sock.sendall(data)
        answer = json.loads(recv_until_eof(sock))
    assert answer["headers"]["STATUS"] == "400 Bad Request"
    assert answer["headers"]["type"] == "RESPONSE"
    assert text in answer["body"]
    assert send(app, "/").StatusCode == 200  # still serving


def test_a_document_over_the_limit_gets_413() -> None:
    server = Server("127.0.0.1", 0, limits=Limits(max_body_size=64 * 1024))
    server.routeHandler("/", index)
    with server, raw_connect(server.PORT) as sock:
        sock.sendall(b'{"headers": {}, "body": "' + b"x" * 100_000)
        answer = json.loads(recv_until_eof(sock))
        assert answer["headers"]["STATUS-CODE"] == 413


def test_a_client_that_stalls_mid_document_is_timed_out() -> None:
    server = Server("127.0.0.1", 0, limits=Limits(frame_timeout=0.3))
    server.routeHandler("/", index)
    with server:
        with raw_connect(server.PORT) as sock:
            sock.sendall(request_bytes(server.PORT)[:40])  # half a document, then nothing
            other = send(server, "/")  # everyone else is served meanwhile
            answer = json.loads(recv_until_eof(sock))
        assert other.StatusCode == 200
        assert answer["headers"]["STATUS"] == "408 Request Timeout"
        assert "not complete within 0.3 s" in answer["body"]


def test_idle_connections_and_the_connection_limit() -> None:
    server = Server("127.0.0.1", 0, limits=Limits(idle_timeout=0.3, max_connections=1))
    server.routeHandler("/", index)
    with server:
        # Two silent connections: whichever the server accepts first is idle and
        # answered 408 at the idle timeout (T7), the other is over the limit: 503 (T29).
        with raw_connect(server.PORT) as one, raw_connect(server.PORT) as two:
            answers = [json.loads(recv_until_eof(sock))["headers"] for sock in (one, two)]
        assert sorted(h["STATUS"] for h in answers) == [
            "408 Request Timeout",
            "503 Service Unavailable",
        ]
        assert send(server, "/").StatusCode == 200


def test_a_client_that_shuts_its_sending_side_still_gets_the_answer(app: Server) -> None:
    with raw_connect(app.PORT) as sock:
        sock.sendall(request_bytes(app.PORT))
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(sock) == INDEX_RESPONSE


def test_client_errors() -> None:
    with refused_port() as port, pytest.raises(errors.ConnectError, match=f"127.0.0.1:{port}"):
        Request("127.0.0.1", port, "/").SendRequest()
    with pytest.raises(RuntimeError, match="does not belong to a request"):
        Response().SendResponse()

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def half_answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b'{"headers": {')

    thread = threading.Thread(target=half_answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(errors.RemoteProtocolError, match="before the document was complete"):
            Request("127.0.0.1", port, "/", timeout=TIMEOUT).SendRequest()
    finally:
        thread.join(TIMEOUT)
        listener.close()


def test_headers_and_bodies_are_set_as_the_original_sets_them() -> None:
    req = Request("127.0.0.1", 3000, "/")
    req.setHeader("TEST-HEADER", True)
    req.setBody({"test": True})
    assert req.getRequest().encode() == request_bytes(3000)
    req.setHeaders({"HOST": "h"})
    assert req.Headers == {"HOST": "h"}
    resp = Response()
    resp.setStatus(200, "OK")
    resp.setBody("<1>Index page</1>")
    assert resp.getResponse().encode() == INDEX_RESPONSE
    assert (resp.StatusCode, resp.StatusText) == (200, "OK")


# --- startServer(): Ctrl-C and SIGTERM stop it cleanly ------------------------------------------

SLOW_SERVER = """
import time
from rawproto.pyts import Server

app = Server("127.0.0.1", 0)

def slow(request, resp):
    print("started", flush=True)
    time.sleep(0.5)  # sleep-ok: a handler still running when the signal arrives
    resp.setStatus(200, "OK")
    resp.SendResponse()

app.routeHandler("/slow", slow)
app.startServer()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_start_server_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    write_module(tmp_path, "slow_server", SLOW_SERVER)
    srv = Process(["slow_server.py"], tmp_path)
    try:
        port = int(srv.readline().strip().rsplit(":", 1)[1])
        results: list[int] = []
        caller = threading.Thread(
            target=lambda: results.append(
                Request("127.0.0.1", port, "/slow", timeout=TIMEOUT).SendRequest().StatusCode
            )
        )
        caller.start()
        assert srv.readline().strip() == "started"
        srv.signal(sig)
        caller.join(TIMEOUT)
        assert results == [200]  # the running handler finished and answered
        code, out, err = srv.wait()
        assert code == 0, err
        assert out.strip() == "stopped"
        assert "Traceback" not in err
    finally:
        srv.kill()


SERVABLE = """
from rawproto.pyts import Server

app = Server("127.0.0.1", 3000)

def index(request, resp):
    resp.setStatus(200, "OK")
    resp.setBody("served by rawproto serve")
    resp.SendResponse()

app.routeHandler("/", index)

if __name__ == "__main__":
    app.startServer()
"""


def test_rawproto_serve_pyts_runs_a_module_server(tmp_path: Path) -> None:
    write_module(tmp_path, "servable", SERVABLE)
    srv = Process(["-m", "rawproto", "serve", "pyts", "servable:app", "--port", "0"], tmp_path)
    try:
        line = srv.readline().strip()
        assert line.startswith("INFO:: Server started; 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        response = Request("127.0.0.1", port, "/", timeout=TIMEOUT).SendRequest()
        assert response.Body == "served by rawproto serve"
        srv.signal(signal.SIGINT)
        assert srv.wait()[0] == 0
    finally:
        srv.kill()


MEETING_APP = """
import threading
from rawproto.pyts import Server

# Every handler waits here until 8 are running at once: with fewer threads
# the barrier breaks after its timeout and the handlers raise.
meeting = threading.Barrier(8, timeout=20)
app = Server("127.0.0.1", 0)

def meet(request, resp):
    arrived = meeting.wait()
    resp.setStatus(200, "OK")
    resp.setBody(arrived)
    resp.SendResponse()

app.routeHandler("/meet", meet)
"""


def test_rawproto_serve_pyts_runs_as_many_handlers_at_once_as_asked(tmp_path: Path) -> None:
    write_module(tmp_path, "meeting_app", MEETING_APP)
    args = ["-m", "rawproto", "serve", "pyts", "meeting_app:app", "--port", "0"]
    srv = Process([*args, "--handler-threads", "8"], tmp_path)
    try:
        port = int(srv.readline().strip().rsplit(":", 1)[1])
        bodies: list[Any] = []

        def call() -> None:
            response = Request("127.0.0.1", port, "/meet", timeout=60).SendRequest()
            bodies.append(response.Body if response.StatusCode == 200 else response.StatusCode)

        callers = [threading.Thread(target=call) for _ in range(8)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(60)
        assert sorted(bodies) == list(range(8))  # eight handlers met at the barrier
        srv.signal(signal.SIGINT)
        assert srv.wait()[0] == 0
    finally:
        srv.kill()


def test_threads_is_the_handler_threads_limit() -> None:
    app = Server("127.0.0.1", 0, threads=2, limits=Limits(handler_timeout=5))
    assert app.limits == Limits(handler_timeout=5, handler_threads=2)
    app.limits = app.limits.replace(handler_threads=8)  # as `rawproto serve` does
    assert app.threads == 8
    assert Server("127.0.0.1", 0).threads == 4  # pyts' default, whatever Limits says
