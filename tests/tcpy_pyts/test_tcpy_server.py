"""rawproto.tcpy.server: ``TCPServer``, in the background on port 0 with the port read back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dataserve.core.limits import Limits
from rawproto.tcpy.client import TCPClient
from rawproto.tcpy.handler import Channel, TCPHandler
from rawproto.tcpy.server import TCPServer, _Parameters, _run_handler

from .helpers import TIMEOUT


class Add(TCPHandler):
    def __init__(self, x: int, y: int = 0) -> None:
        self.x, self.y = x, y

    def execute(self) -> dict[str, Any]:
        return self.success(sum=self.x + self.y)


class Ask(TCPHandler):
    def execute(self) -> dict[str, Any]:
        self.send({"question": 1})
        return self.success(answer=self.recv())


def kwargs_only(**params: Any) -> dict[str, Any]:
    return {"got": sorted(params)}


@pytest.fixture
def server() -> Iterator[TCPServer]:
    commands = {"add": Add, "ask": Ask, "any": kwargs_only}
    srv = TCPServer("127.0.0.1", 0, commands=commands).start()
    yield srv
    srv.stop()


def _parameter_problem(command: str, target: Any, params: dict[str, Any]) -> str | None:
    return _Parameters(target).problem(command, params)


def test_parameter_problems_are_named_for_the_client() -> None:
    assert _parameter_problem("add", Add, {"x": 1}) is None
    assert _parameter_problem("add", Add, {}) == "command 'add': missing parameter x"
    assert _parameter_problem("add", Add, {"x": 1, "z": 2, "w": 3}) == (
        "command 'add': unexpected parameters z, w"
    )
    assert _parameter_problem("any", kwargs_only, {"a": 1, "b": 2}) is None
    assert _parameter_problem("len", len, {}) == "command 'len': missing parameter obj"
    assert _parameter_problem("max", max, {"anything": 1}) is None  # no signature: called


def test_run_handler_connects_the_handler_or_calls_a_plain_function() -> None:
    class Recording(Channel):
        def __init__(self) -> None:
            self.sent: list[Any] = []

        def send(self, data: Any) -> None:
            self.sent.append(data)

        def recv(self) -> Any:
            return "forty-two"

    channel = Recording()
    assert _run_handler(Ask, {}, channel) == {"success": True, "answer": "forty-two"}
    assert channel.sent == [{"question": 1}]
    assert _run_handler(kwargs_only, {"b": 1, "a": 2}, channel) == {"got": ["a", "b"]}


def test_the_server_binds_port_0_and_answers(server: TCPServer) -> None:
    assert server.port > 0
    client = TCPClient("127.0.0.1", server.port, timeout=TIMEOUT)
    assert client.execute("add", x=2, y=3) == {"success": True, "sum": 5}


def test_unknown_commands_and_bad_parameters_are_error_replies(server: TCPServer) -> None:
    with TCPClient("127.0.0.1", server.port, timeout=TIMEOUT) as client:
        unknown = client.execute("nope")
        assert unknown.get("error") is True and "nope" in unknown["message"]
        bad = client.execute("add", y=1)
        assert bad.get("error") is True and "missing parameter x" in bad["message"]
        assert client.execute("add", x=1) == {"success": True, "sum": 1}  # still usable


def test_a_handler_converses_on_the_connection(server: TCPServer) -> None:
    with TCPClient("127.0.0.1", server.port, timeout=TIMEOUT) as client:
        client.send({"cmd": "ask"})
        assert client.recv() == {"question": 1}
        client.send({"reply": "yes"})
        assert client.recv() == {"success": True, "answer": {"reply": "yes"}}


def test_threads_is_the_handler_threads_limit_and_start_twice_is_an_error() -> None:
    srv = TCPServer("127.0.0.1", 0, {"add": Add}, threads=3, limits=Limits(idle_timeout=5))
    assert srv.limits.handler_threads == 3 and srv.limits.idle_timeout == 5
    srv.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            srv.start()
    finally:
        srv.stop()


def test_handlers_run_at_most_threads_at_once() -> None:
    entered = threading.Semaphore(0)
    release = threading.Event()
    running = [0]
    most = [0]
    lock = threading.Lock()

    def slow() -> dict[str, Any]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        entered.release()
        release.wait(10)
        with lock:
            running[0] -= 1
        return {"ok": True}

    srv = TCPServer("127.0.0.1", 0, {"slow": slow}, threads=2).start()
    try:
        results: list[Any] = []
        callers = [
            threading.Thread(
                target=lambda: results.append(
                    TCPClient("127.0.0.1", srv.port, timeout=TIMEOUT).execute("slow")
                )
            )
            for _ in range(4)
        ]
        for t in callers:
            t.start()
        assert entered.acquire(timeout=10) and entered.acquire(timeout=10)
        assert not entered.acquire(timeout=0.2)  # a third waits for a thread
        release.set()
        for t in callers:
            t.join(10)
        assert results == [{"ok": True}] * 4 and most[0] == 2
    finally:
        release.set()
        srv.stop()
