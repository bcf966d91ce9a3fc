"""rawproto.tinyproto.hooks: a connection's hook thread driven through its inbox
by hand, with no socket and no loop."""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

import pytest

from rawproto.tinyproto import TinyProtoConnection, TinyProtoPlugin
from rawproto.tinyproto.bridge import CLOSED, DRAIN, READY, WAKE
from rawproto.tinyproto.hooks import HookThread
from rawproto.tinyproto.sockview import SocketView


class _View:
    def getpeername(self) -> tuple[str, int]:
        return ("peer", 1234)


class Recorder(TinyProtoConnection):
    loop_pass_interval = 0.01

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[Any] = []
        self.socket_o = cast(SocketView, _View())
        self.passed = threading.Event()

    def pre_loop(self) -> None:
        self.calls.append("pre_loop")

    def transmission_received(self, msg: bytearray) -> None:
        self.calls.append(bytes(msg))

    def loop_pass(self) -> None:
        self.passed.set()

    def post_loop(self) -> None:
        self.calls.append("post_loop")


class Upper(TinyProtoPlugin):
    def msg_receive(self, msg: Any) -> Any:
        return bytearray(bytes(msg).upper())


def run(conn: TinyProtoConnection, *items: tuple[str, Any]) -> list[TinyProtoConnection]:
    """Start ``conn``'s hook thread on ``items`` and wait for it to end."""
    exited: list[TinyProtoConnection] = []
    for item in items:
        conn._inbox.put(item)
    hooks = HookThread(conn, exited.append, daemon=True)
    hooks.start()
    hooks.join(10)
    assert not hooks.is_alive()
    return exited


def test_the_hooks_run_in_order_and_messages_before_a_close_are_handled() -> None:
    conn = Recorder(connection_plugin_list=[Upper])
    exited = run(
        conn, (READY, None), ("msg", bytearray(b"a")), ("msg", bytearray(b"b")), (CLOSED, None)
    )
    assert conn.calls == ["pre_loop", b"A", b"B", "post_loop"]
    assert conn.peername_details == ("peer", 1234)
    assert conn.shutdown and exited == [conn]


def test_a_connection_closed_before_its_handshake_runs_no_hook() -> None:
    conn = Recorder()
    assert run(conn, (CLOSED, None)) == [conn]
    assert conn.calls == [] and conn._closed_seen


def test_a_drain_ends_the_loop_after_what_was_accepted() -> None:
    conn = Recorder()
    run(conn, (READY, None), ("msg", bytearray(b"x")), (DRAIN, None))
    assert conn.calls == ["pre_loop", b"x", "post_loop"]


def test_loop_pass_runs_until_shutdown_is_set() -> None:
    conn = Recorder()
    conn._inbox.put((READY, None))
    hooks = HookThread(conn, None, daemon=True)
    hooks.start()
    assert conn.passed.wait(10)
    conn.shutdown = True  # wakes the thread
    hooks.join(10)
    assert not hooks.is_alive() and conn.calls == ["pre_loop", "post_loop"]


def test_shutdown_before_the_handshake_ends_the_wait() -> None:
    conn = Recorder()
    conn._shutdown = True
    assert run(conn, (WAKE, None)) == [conn]
    assert conn.calls == []


def test_a_hook_that_raises_is_logged_and_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(Recorder):
        def transmission_received(self, msg: bytearray) -> None:
            raise ValueError("bad message")

    conn = Failing()
    with caplog.at_level(logging.ERROR, logger="rawproto.tinyproto"):
        run(conn, (READY, None), ("msg", bytearray(b"x")), ("msg", bytearray(b"y")))
    assert conn.shutdown
    assert conn.calls == ["pre_loop"]  # no post_loop after a hook failed, as before
    assert "Failing.transmission_received raised; closing the connection" in caplog.text
