"""A real ``dataserve serve`` reuses a large body's buffer once nobody holds it.

The server's memory is read from ``/proc``: a second 64 MiB echo right after
a first takes no new memory (the first one's buffer is filled again), a body
the handler keeps is never reused, and a free buffer is given back after
``--buffer-linger`` seconds. ``--buffer-retain 0`` turns the cache off.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dataserve import HTTPDataClient
from dataserve.core import buffer_cache
from tests.conftest import ServerProcess
from tests.http.test_data_path import reset_peak, settled_rss, status

MiB = 1 << 20
SIZE = 64 * MiB

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not buffer_cache.enabled(), reason="needs CPython's bytes layout"),
]


@contextmanager
def serving(handler: str, *flags: str) -> Iterator[tuple[HTTPDataClient, int, int]]:
    server = ServerProcess(
        [sys.executable, "-m", "dataserve", "serve", f"tests.http.handlers:{handler}",
         "--port", "0", *flags]
    )  # fmt: skip
    try:
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            yield client, int(client.send("/pid")), server.port
    finally:
        assert server.stop() == 0


def filled(byte: int) -> bytes:
    return bytes([byte]) * SIZE


@pytest.mark.parametrize(
    ("flags", "reused"),
    [((), True), (("--buffer-retain", "0"), False)],
    ids=["cache", "no-cache"],
)
def test_a_second_echo_right_after_takes_no_new_buffer(
    flags: tuple[str, ...], reused: bool
) -> None:
    with serving("Echo", *flags) as (client, pid, _):
        assert client.send("/echo", filled(1)) == filled(1)
        idle = status(pid)["VmRSS"]
        reset_peak(pid)
        assert client.send("/echo", filled(2)) == filled(2)
        taken = status(pid)["VmHWM"] - idle
    if reused:
        assert taken <= SIZE // 4, f"{taken / SIZE:.2f}x the payload for a reused buffer"
    else:
        assert taken >= SIZE * 3 // 4, f"{taken / SIZE:.2f}x the payload for a new buffer"


def test_a_body_the_handler_keeps_is_never_refilled() -> None:
    with serving("Keeper") as (client, _, _):
        assert client.send("/keep", filled(7)) == SIZE
        for byte in (8, 9):
            assert client.send("/echo", filled(byte)) == filled(byte)
        assert client.send("/kept") == filled(7)


def cut_download(port: int) -> None:
    """A 64 MiB echo whose client reads a little of the reply and leaves."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % SIZE
        )
        sock.sendall(filled(4))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("exchange", ["echo", "download cut short"])
def test_a_free_buffer_is_given_back_after_the_linger(exchange: str) -> None:
    with serving("Echo", "--buffer-linger", "1") as (client, pid, port):
        idle = settled_rss(port, pid, status(pid)["VmRSS"])
        if exchange == "echo":
            assert client.send("/echo", filled(3)) == filled(3)
        else:
            cut_download(port)
        held = status(pid)["VmRSS"] - idle
        after = settled_rss(port, pid, idle + 16 * MiB, within=15.0)
    assert held >= SIZE * 3 // 4, f"{held / MiB:.0f} MiB held for reuse right after"
    assert after <= idle + 16 * MiB, f"{(after - idle) / MiB:.0f} MiB still held after the linger"
