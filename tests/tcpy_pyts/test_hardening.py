"""tcpy and pyts hardened: TLS (trustme), exposure warnings, handler timeouts, the
end of the shutdown grace period. In-process servers on 127.0.0.1:0."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataserve.core import errors
from dataserve.core.limits import Limits
from dataserve.core.security import TLSConfig
from rawproto.pyts import Request, Response, Server
from rawproto.tcpy import TCPClient, TCPHandler, TCPServer
from tests.tcpy_pyts.helpers import TIMEOUT, Process, write_module


class Gate:
    """Handlers wait on it; the test opens it (no sleeping to synchronise)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def wait(self) -> None:
        self.entered.set()
        self.opened.wait(TIMEOUT)


GATE = Gate()
SEEN: list[BaseException] = []


class Add(TCPHandler):
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def execute(self) -> dict[str, Any]:
        return self.success(solution=self.x + self.y)


class Hang(TCPHandler):
    def execute(self) -> dict[str, Any]:
        GATE.wait()
        return self.success(late=True)


class HangThenTalk(TCPHandler):
    """Times out while waiting in recv(): the conversation is over for it."""

    def execute(self) -> dict[str, Any]:
        try:
            self.recv()
        except errors.DataServeError as exc:
            SEEN.append(exc)
            GATE.opened.set()
        return self.success()


COMMANDS = {"add": Add, "hang": Hang, "talk": HangThenTalk}


@pytest.fixture(autouse=True)
def _gate() -> Iterator[None]:
    global GATE
    GATE = Gate()
    SEEN.clear()
    yield
    GATE.opened.set()  # never leave a handler blocked


def tcpy(**kwargs: Any) -> TCPServer:
    kwargs.setdefault("host", "127.0.0.1")
    return TCPServer(port=0, commands=COMMANDS, **kwargs).start()


def pyts(**kwargs: Any) -> Server:
    server = Server(kwargs.pop("host", "127.0.0.1"), 0, **kwargs)

    def index(request: Request, response: Response) -> None:
        response.setStatus(200, "OK")
        response.setBody(request.Body)
        response.SendResponse()

    def hang(request: Request, response: Response) -> None:
        GATE.wait()
        response.setStatus(200, "OK")
        response.SendResponse()

    server.routeHandler("/", index)
    server.routeHandler("/hang", hang)
    return server.start()


def ask(server: Server, endpoint: str, body: Any = "x", **kwargs: Any) -> Response:
    request = Request("127.0.0.1", server.PORT, endpoint, timeout=TIMEOUT, **kwargs)
    request.setBody(body)
    return request.SendRequest()


# --- TLS --------------------------------------------------------------------------------


def test_tcpy_over_tls(pki: dict[str, str]) -> None:
    server = tcpy(tls=TLSConfig(pki["cert"], pki["key"]))
    try:
        with TCPClient("127.0.0.1", server.port, ca_file=pki["ca"]) as client:
            assert client.execute("add", x=1, y=2) == {"success": True, "solution": 3}
            assert client.execute("add", x=2, y=2) == {"success": True, "solution": 4}
        unverified = TCPClient("127.0.0.1", server.port, tls=True, timeout=TIMEOUT)
        with pytest.raises(errors.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            unverified.execute("add", x=1, y=1)
        plain = TCPClient("127.0.0.1", server.port, timeout=TIMEOUT)
        with pytest.raises(errors.ConnectionClosed):
            plain.execute("add", x=1, y=1)
    finally:
        server.stop()


def test_tcpy_with_client_certificates(pki: dict[str, str]) -> None:
    server = tcpy(tls=TLSConfig(pki["cert"], pki["key"], client_ca=pki["ca"]))
    cert = (pki["client_cert"], pki["client_key"])
    try:
        client = TCPClient("127.0.0.1", server.port, ca_file=pki["ca"], cert=cert)
        assert client.execute("add", x=5, y=5) == {"success": True, "solution": 10}
        anonymous = TCPClient("127.0.0.1", server.port, ca_file=pki["ca"], timeout=TIMEOUT)
        with pytest.raises((errors.ConnectError, errors.ConnectionClosed)):
            anonymous.execute("add", x=1, y=1)
    finally:
        server.stop()


def test_pyts_over_tls(pki: dict[str, str]) -> None:
    server = pyts(tls=TLSConfig(pki["cert"], pki["key"]))
    try:
        response = ask(server, "/", {"over": "tls"}, ca_file=pki["ca"])
        assert (response.StatusCode, response.Body) == (200, {"over": "tls"})
        assert ask(server, "/", "unverified", verify=False).Body == "unverified"
        with pytest.raises(errors.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            ask(server, "/", tls=True)
    finally:
        server.stop()


# --- binding beyond loopback is an explicit choice ----------------------------------------


@pytest.mark.parametrize("start", [tcpy, pyts], ids=["tcpy", "pyts"])
def test_binding_beyond_loopback_without_client_certificates_warns(
    start: Any, pki: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    name = "tcpy" if start is tcpy else "pyts"
    caplog.set_level(logging.WARNING, logger=f"rawproto.{name}")
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"host": "127.0.0.1"}, False),
        ({"host": "0.0.0.0"}, True),
        ({"host": "0.0.0.0", "tls": TLSConfig(pki["cert"], pki["key"])}, True),
        ({"host": "0.0.0.0", "tls": TLSConfig(pki["cert"], pki["key"], pki["ca"])}, False),
    ]
    for kwargs, warns in cases:
        caplog.clear()
        start(**kwargs).stop()
        messages = [r.getMessage() for r in caplog.records if r.name == f"rawproto.{name}"]
        assert any("has no token" in m for m in messages) == warns, (kwargs, messages)


# --- handler timeouts ---------------------------------------------------------------------


def test_a_tcpy_command_past_handler_timeout_gets_an_error_reply() -> None:
    server = tcpy(limits=Limits(handler_timeout=0.3))
    try:
        with TCPClient("127.0.0.1", server.port, timeout=TIMEOUT) as client:
            reply = client.execute("hang")
            assert reply == {"error": True, "message": "command 'hang' did not answer within 0.3 s"}
            # The connection goes on, and so does the server.
            assert client.execute("add", x=1, y=2) == {"success": True, "solution": 3}
    finally:
        GATE.opened.set()
        server.stop()


def test_a_timed_out_tcpy_conversation_is_over_for_the_handler() -> None:
    server = tcpy(limits=Limits(handler_timeout=0.3))
    try:
        with TCPClient("127.0.0.1", server.port, timeout=TIMEOUT) as client:
            reply = client.execute("talk")  # the handler waits for a message that never comes
            assert reply["error"] is True and "did not answer" in reply["message"]
            assert GATE.opened.wait(TIMEOUT)
            assert isinstance(SEEN[0], errors.ConnectionClosed)
            # The next request is a request, not the old handler's message.
            assert client.execute("add", x=2, y=3) == {"success": True, "solution": 5}
    finally:
        server.stop()


def test_a_pyts_handler_past_handler_timeout_gets_504() -> None:
    server = pyts(limits=Limits(handler_timeout=0.3))
    try:
        response = ask(server, "/hang")
        assert (response.StatusCode, response.StatusText) == (504, "Gateway Timeout")
        assert response.Body == "the handler did not answer within 0.3 s"
        assert ask(server, "/", "still serving").Body == "still serving"
    finally:
        GATE.opened.set()
        server.stop()


# --- the end of the shutdown grace period -------------------------------------------------


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def test_a_tcpy_command_still_running_after_the_grace_period_gets_an_error_reply() -> None:
    server = tcpy()
    client = TCPClient("127.0.0.1", server.port, timeout=TIMEOUT)
    thread, out = _in_thread(lambda: client.execute("hang"))
    assert GATE.entered.wait(TIMEOUT)
    server.stop(timeout=0.2)
    thread.join(TIMEOUT)
    assert out == [{"error": True, "message": "the server shut down before the command finished"}]


def test_a_pyts_handler_still_running_after_the_grace_period_gets_503() -> None:
    server = pyts()
    thread, out = _in_thread(lambda: ask(server, "/hang"))
    assert GATE.entered.wait(TIMEOUT)
    server.stop(timeout=0.2)
    thread.join(TIMEOUT)
    (response,) = out
    assert response.StatusCode == 503
    assert response.Body == "the server shut down before the handler answered"


def test_rawproto_serve_takes_the_tls_flags(tmp_path: Path, pki: dict[str, str]) -> None:
    write_module(
        tmp_path,
        "tls_server",
        """
        from rawproto.pyts import Server

        def index(request, response):
            response.setStatus(200, "OK")
            response.setBody("over tls")
            response.SendResponse()

        server = Server("127.0.0.1", 0)
        server.routeHandler("/", index)
        """,
    )
    args = ["-m", "rawproto", "serve", "pyts", "tls_server:server", "--port", "0"]
    srv = Process([*args, "--tls-cert", pki["cert"], "--tls-key", pki["key"]], tmp_path)
    try:
        port = int(srv.readline().strip().rsplit(":", 1)[1])
        request = Request("127.0.0.1", port, "/", timeout=TIMEOUT, ca_file=pki["ca"])
        assert request.SendRequest().Body == "over tls"
        srv.signal(signal.SIGTERM)
        assert srv.wait()[0] == 0
    finally:
        srv.kill()
    code, _, err = Process([*args, "--tls-cert", pki["cert"]], tmp_path).wait()
    assert code == 2 and "--tls-cert and --tls-key go together" in err
