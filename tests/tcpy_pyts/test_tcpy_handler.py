"""rawproto.tcpy.handler: ``TCPHandler``, the base of tcpy command handlers, and its channel."""

from __future__ import annotations

from typing import Any

import pytest

from rawproto.tcpy.handler import UNCONNECTED, Channel, TCPHandler


class Add(TCPHandler):
    def execute(self) -> dict[str, Any]:
        a, b = self.params.get("a"), self.params.get("b")
        if not isinstance(a, int) or not isinstance(b, int):
            return self.error("a and b must be ints", got=[a, b])
        return self.success(sum=a + b)


class Recording(Channel):
    def __init__(self, incoming: list[Any]) -> None:
        self.sent: list[Any] = []
        self.incoming = incoming
        self.closed = False

    def send(self, data: Any) -> None:
        self.sent.append(data)

    def recv(self) -> Any:
        return self.incoming.pop(0)

    def close(self) -> None:
        self.closed = True


def test_parameters_come_as_keyword_arguments() -> None:
    assert Add(a=1, b=2).params == {"a": 1, "b": 2}
    assert Add(a=1, b=2).execute() == {"success": True, "sum": 3}


def test_success_and_error_maps() -> None:
    h = Add()
    assert h.success() == {"success": True}
    assert h.error("nope") == {"error": True, "message": "nope"}
    assert Add(a="x", b=1).execute() == {
        "error": True,
        "message": "a and b must be ints",
        "got": ["x", 1],
    }


def test_a_handler_without_execute_says_so() -> None:
    with pytest.raises(TypeError, match="Bare must define execute"):
        type("Bare", (TCPHandler,), {})().execute()


def test_outside_a_server_send_and_recv_say_why_they_cannot() -> None:
    h = Add()
    assert h._channel is UNCONNECTED
    with pytest.raises(RuntimeError, match="not running on a TCPServer connection"):
        h.send({"x": 1})
    with pytest.raises(RuntimeError, match="not running on a TCPServer connection"):
        h.recv()
    UNCONNECTED.close()  # nothing to close: harmless


def test_a_connected_handler_converses_through_its_channel() -> None:
    class Chat(TCPHandler):
        def execute(self) -> dict[str, Any]:
            self.send({"question": "name?"})
            answer = self.recv()
            return self.success(hello=answer["name"])

    h = Chat()
    channel = Recording([{"name": "Ada"}])
    h._channel = channel
    assert h.execute() == {"success": True, "hello": "Ada"}
    assert channel.sent == [{"question": "name?"}]
    assert Add()._channel is UNCONNECTED  # one handler's channel is not another's
