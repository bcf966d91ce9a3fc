"""dataserve.core.net: listening sockets bound one way, and the shared defaults."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from dataserve.core import net
from dataserve.core.net import BACKLOG, bind_socket, bind_unix, is_loopback, remove_unix_socket


def test_the_defaults_are_loopback_and_positive() -> None:
    assert net.DEFAULT_HOST == "127.0.0.1" and is_loopback(net.DEFAULT_HOST)
    assert BACKLOG > 0
    for name in ("CLIENT_TIMEOUT", "CONNECT_TIMEOUT", "POOL_TIMEOUT", "FACADE_CLIENT_TIMEOUT"):
        assert getattr(net, name) > 0, name
    assert net.CONNECT_TIMEOUT < net.CLIENT_TIMEOUT


def test_port_0_binds_a_real_port_that_accepts_connections() -> None:
    with bind_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        assert port > 0
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            peer, _ = sock.accept()
            peer.close()


def test_listen_false_only_reserves_the_port() -> None:
    with bind_socket("127.0.0.1", 0, listen=False) as sock:
        port = sock.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)


def test_reuse_port_lets_a_second_socket_share_the_port() -> None:
    with bind_socket("127.0.0.1", 0, reuse_port=True) as first:
        port = first.getsockname()[1]
        with bind_socket("127.0.0.1", port, reuse_port=True) as second:
            assert second.getsockname()[1] == port
        with pytest.raises(OSError):
            bind_socket("127.0.0.1", port)  # without SO_REUSEPORT: in use


def test_an_ipv6_host_gets_an_ipv6_socket() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        sock = bind_socket("::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with sock:
        assert sock.family == socket.AF_INET6


def test_a_bad_address_is_an_os_error() -> None:
    with pytest.raises(OSError):
        bind_socket("192.0.2.1", 0)  # TEST-NET: not this machine's


def test_bind_unix_listens_and_replaces_a_stale_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    stale = bind_unix(path, listen=False)
    stale.close()  # the file stays behind, as a crashed server leaves it
    assert os.path.exists(path)
    with bind_unix(path):
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
        remove_unix_socket(path)
    assert not os.path.exists(path)
    remove_unix_socket(path)  # gone already: nothing to do


def test_bind_unix_never_removes_a_file_that_is_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("precious")
    with pytest.raises(FileExistsError, match="not a socket"):
        bind_unix(str(path))
    remove_unix_socket(path)
    assert path.read_text() == "precious"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
