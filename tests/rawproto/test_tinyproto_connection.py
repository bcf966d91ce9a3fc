"""rawproto.tinyproto.connection: ``TinyProtoConnection``, its hooks, plugins and blocking calls.

Connections are made by a client against a server on port 0 (helpers of
``test_tinyproto.py``); the parts that need no peer are called directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rawproto.tinyproto.bridge import TinyProtoError
from rawproto.tinyproto.connection import TinyProtoConnection, TinyProtoPlugin, as_plugin

from .test_tinyproto import Collector, ReadyServer, Running, connect


class Tag(TinyProtoPlugin):
    def __init__(self, tag: bytes = b"+") -> None:
        self.tag = tag

    def msg_transmit(self, msg: Any) -> Any:
        return bytes(msg) + self.tag

    def msg_receive(self, msg: Any) -> Any:
        return bytearray(bytes(msg).removesuffix(self.tag))


@pytest.fixture
def running() -> Iterator[Running]:
    server = ReadyServer()
    server.set_conn_handler(Collector)
    r = Running(server)
    yield r
    r.stop()


def test_the_base_plugin_passes_messages_through_and_as_plugin_checks() -> None:
    plain = TinyProtoPlugin()
    assert plain.msg_transmit(b"x") == b"x" and plain.msg_receive(b"y") == b"y"
    assert isinstance(as_plugin(Tag), Tag)
    tag = Tag()
    assert as_plugin(tag) is tag
    with pytest.raises(ValueError, match="Not a subclass of TinyProtoPlugin"):
        as_plugin(object)


def test_a_fresh_connection_has_no_socket_and_the_hooks_do_nothing() -> None:
    conn = TinyProtoConnection()
    assert conn.socket_o is None and not conn.is_socket_up and not conn.is_alive()
    conn.pre_loop()
    conn.loop_pass()
    conn.transmission_received(bytearray(b"x"))
    conn.post_loop()
    conn.join(0)  # no thread: nothing to wait for
    assert conn.connection_id != TinyProtoConnection().connection_id


def test_tinyproto_3_arguments_give_the_plugins() -> None:
    conn = TinyProtoConnection(None, False, ("h", 1), [Tag()])
    assert [type(p) for p in conn.plugin_list] == [Tag]
    conn2 = TinyProtoConnection(connection_plugin_list=[Tag], remote_details=("h", 2))
    assert conn2.remote_details == ("h", 2) and len(conn2.plugin_list) == 1


def test_transmit_refuses_text_and_oversize_before_anything_is_sent() -> None:
    conn = TinyProtoConnection()
    with pytest.raises(TypeError, match="transmit takes bytes, not str"):
        conn.transmit("text")  # type: ignore[arg-type]


def test_transmit_on_an_unconnected_connection_sets_shutdown() -> None:
    conn = TinyProtoConnection()
    conn.transmit(b"nowhere")
    assert conn.shutdown is True


def test_plugins_apply_out_in_order_and_in_in_reverse(running: Running) -> None:
    _client, conn = connect(running.port)
    conn.register_plugin(Tag(b"1"))
    conn.register_plugin(Tag(b"2"))
    assert running.server.connected.wait(10)
    (server_conn,) = running.server.active_connections
    conn.transmit(b"m")
    assert server_conn.next_message() == b"m12"
    server_conn.transmit(b"back12")  # as a peer with the same plugins sends it
    assert conn.next_message() == b"back"  # "2" is taken off first, then "1"
    conn.shutdown = True
    conn.join(10)


def test_receive_takes_the_next_message_instead_of_the_hook(running: Running) -> None:
    got: list[bytes] = []
    ready = threading.Event()

    class Asker(TinyProtoConnection):
        def pre_loop(self) -> None:
            got.append(bytes(self.receive()))
            ready.set()

    _client, conn = connect(running.port, Asker)
    assert running.server.connected.wait(10)
    (server_conn,) = running.server.active_connections
    server_conn.transmit(b"direct")
    assert ready.wait(10) and got == [b"direct"]
    conn.shutdown = True
    conn.join(10)
    assert not conn.is_alive()


def test_setting_shutdown_closes_after_post_loop(running: Running) -> None:
    _client, conn = connect(running.port)
    assert running.server.connected.wait(10)
    (server_conn,) = running.server.active_connections
    conn.shutdown = True
    conn.join(10)
    assert conn.ended.is_set() and not conn.is_alive()
    assert server_conn.ended.wait(10)  # the peer saw the close
    conn.transmit(b"after close")  # as the original: shutdown, no error
    assert conn.shutdown


def test_a_refused_message_is_a_tinyproto_error() -> None:
    server = ReadyServer()
    server.set_conn_handler(Collector)
    server.max_message_size = 4
    small = Running(server)
    try:
        _client, conn = connect(small.port)
        assert server.connected.wait(10)
        with pytest.raises(TinyProtoError, match="Transmission rejected"):
            conn.transmit(b"too long for it")
        conn.transmit(b"ok")
        (server_conn,) = server.active_connections
        assert server_conn.next_message() == b"ok"
        conn.shutdown = True
        conn.join(10)
    finally:
        small.stop()
