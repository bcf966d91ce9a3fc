"""rawproto.tinyproto.endpoint: what the tinyproto server and client share."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from rawproto.tinyproto.connection import TinyProtoConnection, TinyProtoPlugin
from rawproto.tinyproto.endpoint import (
    TINYPROTO_LIMITS,
    ActiveConnections,
    Endpoint,
    TinyProtoConnectionDetails,
    check_port,
)


def test_tinyproto_connections_have_no_idle_timeout() -> None:
    assert TINYPROTO_LIMITS.idle_timeout == math.inf


@pytest.mark.parametrize(("port", "number"), [(0, 0), ("8080", 8080), (65535, 65535)])
def test_check_port_takes_0_to_65535(port: Any, number: int) -> None:
    assert check_port(port) == number


@pytest.mark.parametrize("port", [-1, 65536])
def test_check_port_refuses_the_rest(port: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 65535"):
        check_port(port)
    with pytest.raises(ValueError):
        check_port("http")


def test_connection_details_hold_a_checked_address() -> None:
    details = TinyProtoConnectionDetails("127.0.0.1", "9000")  # type: ignore[arg-type]
    assert details.socket_connect_details == ("127.0.0.1", 9000)
    with pytest.raises(ValueError):
        TinyProtoConnectionDetails("h", 70000)


class Conn:
    def __init__(self) -> None:
        self.connection_id = uuid.uuid4()


def test_active_connections_are_a_list_with_the_originals_dict_views() -> None:
    a, b = Conn(), Conn()
    active = ActiveConnections([a, b])
    assert active[1] is b and len(active) == 2
    assert list(active.keys()) == [a.connection_id, b.connection_id]
    assert list(active.values()) == [a, b]
    assert dict(active.items()) == {a.connection_id: a, b.connection_id: b}
    assert active.get(b.connection_id) is b and active.get(uuid.uuid4(), "none") == "none"
    for c in active.values():  # iterating a copy: removing meanwhile is safe
        active.remove(c)
    assert active == []


class Upper(TinyProtoPlugin):
    def msg_transmit(self, msg: Any) -> Any:
        return bytes(msg).upper()

    def msg_receive(self, msg: Any) -> Any:
        return bytes(msg).lower()


def test_an_endpoint_takes_a_handler_class_and_plugins() -> None:
    class Mine(TinyProtoConnection):
        pass

    endpoint = Endpoint(Mine, [Upper()])
    endpoint.register_connection_plugin(Upper)  # a class is instantiated
    assert endpoint.connection_handler is Mine
    assert [type(p) for p in endpoint.connection_plugin_list] == [Upper, Upper]
    with pytest.raises(ValueError, match="Not a subclass of TinyProtoPlugin"):
        endpoint.register_connection_plugin(object())
    conn = endpoint._new_connection()
    assert isinstance(conn, Mine) and len(conn.plugin_list) == 2
    assert endpoint._limits() == endpoint.limits
    endpoint.max_message_size = 1000  # a smaller cap becomes the frame limit
    assert endpoint._limits().max_frame_size == 1000
    with pytest.raises(ValueError, match="must be a subclass of TinyProtoConnection"):
        endpoint.set_conn_handler(object)


def test_shutdown_is_a_flag_and_the_hooks_do_nothing_by_default() -> None:
    endpoint = Endpoint()
    assert endpoint.shutdown is False
    endpoint.pre_loop()
    endpoint.loop_pass()
    endpoint.post_loop()
    endpoint.shutdown = True
    assert endpoint.shutdown is True
