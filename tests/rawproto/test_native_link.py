"""rawproto.native.link: the blocking client's connection kept, renewed and closed,
against a Unix socket served by hand."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataserve.core import errors
from rawproto.native.client import RawDataClient
from rawproto.native.link import Link, readable
from rawproto.proto.base import Role
from rawproto.proto.native import PREFACE, Error, NativeConnection


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    sock.settimeout(10)
    yield sock, path
    sock.close()


def accept(listener: socket.socket) -> tuple[socket.socket, NativeConnection]:
    conn, _ = listener.accept()
    conn.settimeout(10)
    proto = NativeConnection(Role.SERVER)
    assert conn.recv(len(PREFACE)) == PREFACE  # the client's opening came first
    conn.sendall(proto.initiate())
    return conn, proto


def test_the_connection_is_kept_while_the_server_says_only_its_preface(
    listener: tuple[socket.socket, str],
) -> None:
    server, path = listener
    link = Link(RawDataClient(uds=path))
    sock, exchange = link.open()
    conn, _ = accept(server)
    assert link.open() == (sock, exchange)
    assert link.open() == (sock, exchange)  # the preface was read, nothing else came
    link.close()
    assert (link.sock, link.exchange) == (None, None) and sock.fileno() == -1
    conn.close()


def test_a_connection_the_server_spoke_on_or_closed_is_replaced(
    listener: tuple[socket.socket, str],
) -> None:
    server, path = listener
    link = Link(RawDataClient(uds=path))
    first, _ = link.open()
    conn, proto = accept(server)
    conn.sendall(proto.send(Error(0, 503, "idle too long")))
    second, _ = link.open()
    assert second is not first and first.fileno() == -1
    conn2, _ = accept(server)
    assert link.open()[0] is second  # its preface only
    conn2.close()
    third, _ = link.open()
    assert third is not second
    link.close()
    conn.close()


def test_no_server_is_connect_error(tmp_path: Path) -> None:
    link = Link(RawDataClient(uds=str(tmp_path / "nobody")))
    with pytest.raises(errors.ConnectError, match="unix:"):
        link.open()


def test_socket_errors_become_the_cores() -> None:
    link = Link(RawDataClient(7, timeout=2.5))
    with pytest.raises(errors.TimeoutError, match=r"127\.0\.0\.1:7 within 2\.5 s"):
        link.error(BlockingIOError())
    with pytest.raises(errors.ConnectionClosed, match="lost") as info:
        link.error(ConnectionResetError(104, "reset"))
    assert isinstance(info.value.__cause__, ConnectionResetError)


def test_send_gathers_a_header_and_a_piece_and_readable_sees_data() -> None:
    mine, theirs = socket.socketpair()
    with mine, theirs:
        link = Link(RawDataClient(1))
        assert not readable(theirs)
        link.send(mine, b"head", memoryview(b"piece"))
        link.send(mine, b"", b"-more")
        assert readable(theirs)
        assert theirs.recv(100) == b"headpiece-more"
