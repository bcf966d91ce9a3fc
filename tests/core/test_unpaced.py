"""Loopback connections leave a congestion control that paces (BBR) for reno.

The unit cases drive ``unpace`` with stand-in sockets, so they hold on any
host; the real-socket cases compare against this host's own default, which
the kernel reports on a fresh socket, and hold whichever it is.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from dataserve.client import AsyncHTTPDataClient, HTTPDataClient
from dataserve.core import net
from dataserve.core.net import bind_socket, loopback_socket_options, unpace, unpace_loopback
from rawproto._blocking import connect
from rawproto.engine import RawServer, open_connection

from ..rawproto.lines import LineService

linux_only = pytest.mark.skipif(
    not hasattr(socket, "TCP_CONGESTION"), reason="TCP_CONGESTION is Linux's"
)


class FakeSocket:
    """A socket whose congestion control is ``cc``; ``refuse`` makes setting it fail."""

    def __init__(self, cc: bytes, peer: str = "127.0.0.1", refuse: bool = False) -> None:
        self.cc, self.peer, self.refuse = cc, peer, refuse
        self.family = socket.AF_INET

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        assert (level, option, size) == (socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
        return self.cc.ljust(16, b"\0")

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        if self.refuse:
            raise PermissionError(1, "Operation not permitted")
        self.cc = value

    def getpeername(self) -> tuple[str, int]:
        return (self.peer, 9)


def cc_of(sock: Any) -> bytes:
    return bytes(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)).rstrip(b"\0")


def host_default() -> bytes:
    with socket.socket() as probe:
        return cc_of(probe)


def expected_on_loopback() -> bytes:
    default = host_default()
    return b"reno" if default.startswith(b"bbr") else default


@linux_only
@pytest.mark.parametrize(
    ("cc", "after", "changed"),
    [
        (b"bbr", b"reno", True),
        (b"bbr2", b"reno", True),
        (b"cubic", b"cubic", False),
        (b"reno", b"reno", False),
    ],
)
def test_only_a_pacing_congestion_control_is_switched(
    cc: bytes, after: bytes, changed: bool
) -> None:
    sock = FakeSocket(cc)
    assert unpace(sock) is changed
    assert sock.cc == after


@linux_only
def test_a_refusal_leaves_the_socket_as_it_was() -> None:
    sock = FakeSocket(b"bbr", refuse=True)
    assert unpace(sock) is False and sock.cc == b"bbr"


def test_without_tcp_congestion_nothing_is_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net, "_CONGESTION", None)
    sock = FakeSocket(b"bbr")
    assert unpace(sock) is False and sock.cc == b"bbr"


@linux_only
def test_only_a_connection_to_this_machine_is_switched() -> None:
    assert unpace_loopback(FakeSocket(b"bbr", peer="127.0.0.1")) is True
    assert unpace_loopback(FakeSocket(b"bbr", peer="::1")) is True
    remote = FakeSocket(b"bbr", peer="192.0.2.7")
    assert unpace_loopback(remote) is False and remote.cc == b"bbr"
    unix = FakeSocket(b"bbr")
    unix.family = socket.AF_UNIX
    assert unpace_loopback(unix) is False and unix.cc == b"bbr"


@linux_only
def test_a_loopback_listener_and_what_it_accepts_use_the_unpaced_one() -> None:
    want = expected_on_loopback()
    with bind_socket("127.0.0.1", 0) as listener:
        assert cc_of(listener) == want
        with socket.create_connection(listener.getsockname(), timeout=5) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert cc_of(accepted) == want
                assert cc_of(client) == host_default()  # a plain client keeps the default
    with bind_socket("0.0.0.0", 0) as everywhere:
        assert cc_of(everywhere) == host_default()  # peers may be anywhere: untouched


@linux_only
def test_our_blocking_clients_switch_on_loopback_only_and_http_clients_ask_for_it() -> None:
    want = expected_on_loopback()
    with bind_socket("0.0.0.0", 0) as listener:
        port = listener.getsockname()[1]
        with connect("127.0.0.1", port, 5, "test server") as sock:
            assert cc_of(sock) == want
            accepted, _ = listener.accept()
            accepted.close()
    options = loopback_socket_options()
    assert options == (
        ((socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno"),) if want == b"reno" else ()
    )


@linux_only
def test_the_engine_s_server_and_client_connections_are_unpaced() -> None:
    want = expected_on_loopback()

    async def main() -> None:
        async with RawServer(LineService()) as server:
            conn = await open_connection(
                lambda c: LineService().session(c), "127.0.0.1", server.port
            )
            assert server._registry is not None
            while server.connections < 1:
                await asyncio.sleep(0.001)  # sleep-ok: yields to the loop while polling a state
            (accepted,) = server._registry.connections
            assert cc_of(accepted.socket) == want
            assert conn.transport is not None
            assert cc_of(conn.transport.get_extra_info("socket")) == want
            conn.close()
            await conn.closed_future

    asyncio.run(asyncio.wait_for(main(), 30))


@linux_only
def test_the_http_client_asks_for_it_on_loopback_only() -> None:
    # httpx sets socket_options on each socket its pool opens (httpcore's
    # ConnectionPool keeps them); a remote server's client has none.
    with HTTPDataClient(9, "http://127.0.0.1:") as local:
        transport = local._client._transport
        assert isinstance(transport, httpx.HTTPTransport)
        assert tuple(transport._pool._socket_options or ()) == loopback_socket_options()
    with HTTPDataClient(9, "http://192.0.2.1:") as remote:
        assert not remote._client._transport._pool._socket_options  # type: ignore[attr-defined]

    async def main() -> None:
        async with AsyncHTTPDataClient(9, "http://[::1]:") as local:
            transport = local._client._transport
            assert isinstance(transport, httpx.AsyncHTTPTransport)
            assert tuple(transport._pool._socket_options or ()) == loopback_socket_options()

    asyncio.run(main())


@linux_only
def test_a_socket_already_closed_is_left_alone() -> None:
    class Closed(FakeSocket):
        def getpeername(self) -> tuple[str, int]:
            raise ValueError("negative file descriptor")  # uvloop's PseudoSocket, closed

    closed = Closed(b"bbr")
    assert unpace_loopback(closed) is False and closed.cc == b"bbr"
    with socket.socket() as sock:
        pass
    assert unpace_loopback(sock) is False and unpace(sock) is False
