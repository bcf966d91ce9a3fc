"""tcpy and pyts answer failures by the core's one policy, and survive a hung handler.

A handler that blocks for good gets its client the timeout answer, and its
thread is replaced: with one handler thread, later requests are still
answered. An exception's type reaches the client, never its text, unless
the handler raised a ``DataServeError`` on purpose.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import dataserve
from dataserve.core.limits import Limits
from rawproto.pyts import Request, Response, Server
from rawproto.tcpy import TCPClient, TCPHandler, TCPServer
from tests.tcpy_pyts.helpers import TIMEOUT

ONE_THREAD = Limits(handler_timeout=0.5)  # with threads=1


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # the hung handlers finish after the test


# --- tcpy -----------------------------------------------------------------------------------


def tcpy_server(release: threading.Event) -> TCPServer:
    class Hang(TCPHandler):
        def execute(self) -> dict[str, Any]:
            release.wait(60)
            return self.success()

    class Echo(TCPHandler):
        def __init__(self, text: str) -> None:
            self.text = text

        def execute(self) -> dict[str, Any]:
            return self.success(text=self.text)

    class Refuse(TCPHandler):
        def execute(self) -> dict[str, Any]:
            raise dataserve.BadRequest("x must be positive")

    class Leak(TCPHandler):
        def execute(self) -> dict[str, Any]:
            raise RuntimeError("password=hunter2")

    commands = {"hang": Hang, "echo": Echo, "refuse": Refuse, "leak": Leak}
    return TCPServer("127.0.0.1", 0, commands, threads=1, limits=ONE_THREAD).start()


def test_tcpy_serves_on_after_a_command_hangs_its_only_thread(release: threading.Event) -> None:
    server = tcpy_server(release)
    try:
        with TCPClient("127.0.0.1", server.port, timeout=TIMEOUT) as client:
            assert client.execute("hang") == {
                "error": True,
                "message": "command 'hang' did not answer within 0.5 s",
            }
            for i in range(3):
                assert client.execute("echo", text=f"n{i}") == {"success": True, "text": f"n{i}"}
        # A new connection too (the original client's one request per connection).
        assert TCPClient("127.0.0.1", server.port, timeout=TIMEOUT).execute("echo", text="x") == {
            "success": True,
            "text": "x",
        }
    finally:
        release.set()
        server.stop()


def test_tcpy_errors_follow_the_one_policy(release: threading.Event) -> None:
    server = tcpy_server(release)
    try:
        with TCPClient("127.0.0.1", server.port, timeout=TIMEOUT) as client:
            assert client.execute("refuse") == {"error": True, "message": "x must be positive"}
            assert client.execute("leak") == {
                "error": True,
                "message": "command 'leak' raised RuntimeError (see the server log)",
            }
    finally:
        server.stop()


# --- pyts -----------------------------------------------------------------------------------


def pyts_server(release: threading.Event) -> Server:
    app = Server("127.0.0.1", 0, threads=1, limits=ONE_THREAD)

    def hang(request: Request, response: Response) -> None:
        release.wait(60)

    def echo(request: Request, response: Response) -> None:
        response.setStatus(200, "OK")
        response.setBody(request.Body)
        response.SendResponse()

    def refuse(request: Request, response: Response) -> None:
        raise dataserve.NotHandled("no such item")

    def leak(request: Request, response: Response) -> None:
        raise RuntimeError("password=hunter2")

    for name, fn in (("/hang", hang), ("/echo", echo), ("/refuse", refuse), ("/leak", leak)):
        app.routeHandler(name, fn)
    return app.start()


def ask(app: Server, endpoint: str, body: Any = None) -> Response:
    request = Request("127.0.0.1", app.PORT, endpoint, timeout=TIMEOUT)
    request.setBody(body)
    return request.SendRequest()


def test_pyts_serves_on_after_a_handler_hangs_its_only_thread(release: threading.Event) -> None:
    app = pyts_server(release)
    try:
        late = ask(app, "/hang")
        assert (late.StatusCode, late.Body) == (504, "the handler did not answer within 0.5 s")
        for i in range(3):
            answer = ask(app, "/echo", f"n{i}")
            assert (answer.StatusCode, answer.Body) == (200, f"n{i}")
    finally:
        release.set()
        app.stop()


def test_pyts_errors_follow_the_one_policy(release: threading.Event) -> None:
    app = pyts_server(release)
    try:
        refused = ask(app, "/refuse")
        assert (refused.StatusCode, refused.StatusText, refused.Body) == (
            404,
            "Not Found",
            "no such item",
        )
        leaked = ask(app, "/leak")
        assert (leaked.StatusCode, leaked.Body) == (
            500,
            "the handler raised RuntimeError for /leak (see the server log)",
        )
    finally:
        app.stop()
