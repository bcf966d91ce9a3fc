"""Bad input on the native framing: each gets its defined answer, others keep being served.

Numbers (T1...) refer to the raw-TCP rows of the project's bad-input catalogue.
"""

from __future__ import annotations

import errno
import resource
import select
import selectors
import socket
import struct
import sys
import time
from typing import Any

import pytest

from dataserve.core.limits import Limits
from rawproto import RawDataClient
from rawproto.proto.native import HEADER, PREFACE, Error, Reply

from ..conftest import ServerProcess
from .conftest import FAST, Wire, connections, finish, wait_closed


def healthy(port: int) -> None:
    """Another client is served normally."""
    with RawDataClient(port, timeout=10) as client:
        assert client.send("/echo", [1, "two"]) == [1, "two"]


def header(length: int, request_id: int = 1, kind: int = 1, res_len: int = 0) -> bytes:
    return HEADER.pack(length, kind, 0, res_len, request_id)


def test_t1_empty_payload_and_zero_length(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    wire.request(1, "/echo", b"")  # an empty body is a valid frame
    assert wire.events(1) == [Reply(1, 2, b"")]
    wire.send(header(0))  # shorter than its own header: cannot resync
    (error,) = wire.until_closed()
    assert (
        isinstance(error, Error)
        and error.code == 400
        and "shorter than the 8 header bytes" in error.message
    )
    healthy(server.port)


def test_t2_huge_length_is_413_without_allocating(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=Limits(max_frame_size=1024 * 1024))
    wire = Wire(server.port)
    wire.send(header(0xFFFFFFFF, request_id=7))
    (error,) = wire.until_closed()
    assert error == Error(7, 413, "frame of 4294967295 bytes is over the limit of 1048576 bytes")
    assert router[1]["calls"] == 0
    healthy(server.port)


def test_t3_frame_cut_short_by_fin_applies_nothing(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    frame = wire.frame(1, "/echo", 2, bytes(1000))
    wire.send(frame[: HEADER.size + 10])
    wire.sock.shutdown(socket.SHUT_WR)
    (error,) = wire.until_closed()  # told why, and nothing was applied
    assert error == Error(
        0, 400, "the peer closed in the middle of a frame (1005 bytes of the frame missing)"
    )
    assert router[1]["calls"] == 0
    healthy(server.port)


def test_t4_header_cut_short_by_fin_closes_quietly(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    wire.send(header(20)[:2])
    wire.sock.shutdown(socket.SHUT_WR)
    (error,) = wire.until_closed()
    assert error == Error(0, 400, "the peer closed in the middle of a frame (2 of 12 header bytes)")
    healthy(server.port)


def test_t5_body_that_never_arrives_hits_the_frame_deadline(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=FAST)
    wire = Wire(server.port)
    wire.send(header(100, request_id=3))
    (error,) = wire.until_closed()
    assert isinstance(error, Error) and error.code == 408
    assert "frame not complete within 0.5 s" in error.message
    healthy(server.port)


def test_t6_trickling_bytes_do_not_extend_the_frame_deadline(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=FAST)
    wire = Wire(server.port)
    wire.send(header(8 + 100))
    sent = 0
    # One byte per 0.1 s: the whole frame would take 10 s; the deadline is
    # 0.5 s from the frame's start, whatever arrives in between.
    while not select.select([wire.sock], [], [], 0.1)[0]:
        wire.send(b"x")
        sent += 1
        assert sent < 100, "the server kept waiting for a trickling frame"
    (error,) = wire.until_closed()
    assert isinstance(error, Error) and error.code == 408
    healthy(server.port)


def test_t7_silence_after_connect_hits_the_handshake_deadline(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=FAST)
    wire = Wire(server.port, preface=False)
    (error,) = wire.until_closed()
    assert error == Error(0, 408, "no handshake within 0.3 s")
    healthy(server.port)


def test_idle_connection_is_closed_after_the_idle_timeout(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=FAST)
    wire = Wire(server.port)
    wire.request(1, "/echo", 1)
    assert wire.events(1) == [Reply(1, 3, b"1")]
    (error,) = wire.until_closed()
    assert error == Error(0, 408, "idle for 0.5 s")


def test_t8_frames_in_one_segment_and_in_one_byte_segments(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    wire.send(wire.frame(1, "/echo", 1, b"a") + wire.frame(2, "/echo", 1, b"b"))
    assert wire.events(2) == [Reply(1, 1, b"a"), Reply(2, 1, b"b")]
    wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in wire.frame(3, "/echo", 1, b"c") + wire.frame(4, "/echo", 1, b"d"):
        wire.send(bytes([byte]))
    assert wire.events(2) == [Reply(3, 1, b"c"), Reply(4, 1, b"d")]


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # T9
        bytes.fromhex("16 03 01 00 a5 01 00 00 a1 03 03") + bytes(160),  # T10: a TLS ClientHello
        b"\xff",  # a tinyproto client
        b"\x00\x00\x00\x05hello",  # a tcpy client
    ],
    ids=["http", "tls", "tinyproto", "tcpy"],
)
def test_t9_t10_other_protocols_are_refused_at_once(
    raw_server: Any, router: Any, data: bytes
) -> None:
    server = raw_server(router[0])  # default 10 s handshake deadline: the answer is immediate
    wire = Wire(server.port, preface=False)
    wire.send(data)
    (error,) = wire.until_closed()
    assert isinstance(error, Error) and (error.request_id, error.code) == (0, 400)
    assert error.message.startswith(
        "not the rawproto native protocol: expected the preface 89 52 50 4e, got "
    )
    healthy(server.port)


def test_unknown_frame_kinds_are_answered_and_skipped(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    for kind in (0x02, 0x03, 0x10, 0x42):
        wire.send(header(8 + 5, request_id=kind, kind=kind) + b"12345")
    wire.request(99, "/echo", "after")
    events = wire.events(5)
    for event, kind in zip(events, (0x02, 0x03, 0x10, 0x42), strict=False):
        assert isinstance(event, Error) and (event.request_id, event.code) == (kind, 400)
    assert "unknown frame kind 0x42" in events[3].message  # type: ignore[union-attr]
    assert events[4] == Reply(99, 1, b"after")


def test_request_id_zero_is_refused(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    wire.send(header(8 + 2, request_id=0, res_len=2) + b"/x")
    (error,) = wire.until_closed()
    assert error == Error(0, 400, "request id 0 is reserved for the connection")


def test_a_bad_version_is_refused(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port, preface=False)
    wire.send(PREFACE[:4] + b"\x07\x00")
    (error,) = wire.until_closed()
    assert isinstance(error, Error) and "version 7; this side speaks 1" in error.message


def test_t31_reset_mid_frame_applies_nothing(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0])
    wire = Wire(server.port)
    wire.request(1, "/echo", "kept")
    assert wire.events(1) == [Reply(1, 1, b"kept")]
    (conn,) = connections(server)
    wire.send(wire.frame(2, "/echo", 2, bytes(5000))[:100])
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wire.close()  # RST
    wait_closed(conn)
    assert router[1]["calls"] == 1
    healthy(server.port)


def test_t25_a_client_that_never_reads_is_throttled_then_dropped(
    raw_server: Any, router: Any
) -> None:
    routes, state = router
    server = raw_server(routes, limits=FAST.replace(idle_timeout=60, send_timeout=1))
    wire = Wire(server.port)
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    wire.request(1000, "/echo", 0)
    assert wire.events(1) == [Reply(1000, 3, b"0")]  # the server has the connection
    state["calls"] = 0
    # 300 requests for 1 MB answers each, and never a read.
    wire.send(b"".join(wire.frame(i, "/big", 3, b"1000000") for i in range(1, 301)))
    (conn,) = connections(server)
    wait_closed(conn)  # aborted once it read nothing for send_timeout
    # Reading stopped while the answers could not be written: most requests
    # were never even taken from the socket.
    assert 0 < state["calls"] < 300
    healthy(server.port)


def test_t29_over_the_connection_limit_refused_others_served(raw_server: Any, router: Any) -> None:
    server = raw_server(router[0], limits=Limits(max_connections=3))
    held = [Wire(server.port) for _ in range(3)]
    for i, wire in enumerate(held):
        wire.request(1, "/echo", i)
        assert wire.events(1) == [Reply(1, 3, str(i).encode())]
    extra = Wire(server.port)
    extra.request(1, "/echo", "x")
    (error,) = extra.until_closed()
    assert error == Error(0, 503, "the server is at its limit of 3 connections")
    held[0].request(2, "/echo", "still")
    assert held[0].events(1) == [Reply(2, 1, b"still")]
    conn = _conn_of(server, held[1])
    held[1].close()
    wait_closed(conn)
    healthy(server.port)  # a slot is free again


def _conn_of(server: Any, wire: Wire) -> Any:
    return next(c for c in connections(server) if c.peername == wire.sock.getsockname())


FLOOD_SERVER = """
import rawproto
from dataserve.core.limits import Limits
from dataserve.core.routing import Router
rawproto.serve(Router({"/echo": lambda payload: payload}), 0,
               limits=Limits(max_connections=20_000, handshake_timeout=30))
"""


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        pytest.skip(f"needs {needed} file descriptors")


@pytest.mark.slow
def test_ten_thousand_connections_opened_and_dropped_at_once() -> None:
    raise_fd_limit(10_500)
    server = ServerProcess([sys.executable, "-c", FLOOD_SERVER])
    try:
        port = server.port
        address = ("127.0.0.1", port)
        steady = RawDataClient(port, timeout=60)
        assert steady.send("/echo", "before") == "before"
        started = time.monotonic()
        socks: list[socket.socket] = []
        selector = selectors.DefaultSelector()
        for _ in range(10_000):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex(address)
            assert err in (0, errno.EINPROGRESS)
            selector.register(sock, selectors.EVENT_WRITE)
            socks.append(sock)
        # Wait until every connection is established (writable), then drop them
        # all: a third after half a frame, a third after garbage, half by RST.
        pending = len(socks)
        while pending:
            ready = selector.select(timeout=30)
            assert ready, "connections did not complete"
            for key, _ in ready:
                selector.unregister(key.fileobj)
                pending -= 1
        selector.close()
        for i, sock in enumerate(socks):
            with _quiet():
                if i % 3 == 0:
                    sock.send(PREFACE + header(100))
                elif i % 3 == 1:
                    sock.send(b"GET / HTTP/1.1\r\n\r\n")
                if i % 2:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        assert steady.send("/echo", "during") == "during"
        with RawDataClient(port, timeout=60) as fresh:
            for i in range(20):
                assert fresh.send("/echo", i) == i
        assert steady.send("/echo", "after") == "after"
        steady.close()
        assert time.monotonic() - started < 90
        assert server.proc.poll() is None
    finally:
        status, _ = finish(server)
    assert status == 0


class _quiet:
    """Ignore send errors on a connection the server may already have refused."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        return kind is not None and issubclass(kind, OSError)
