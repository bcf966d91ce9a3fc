"""tcpy and pyts decode within the core's budget for structures, measured as server memory.

The server runs in its own process (``rawproto serve``); before each message
its peak resident size is reset (``/proc/PID/clear_refs``), and after the
answer the peak (``VmHWM``) is compared with the resident size before: the
memory one message took. Before the budget, a 16 MiB tcpy message of empty
arrays took 70x its size and was answered as a success.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest

from tests.conftest import ServerProcess
from tests.tcpy_pyts.helpers import recv_exactly, recv_until_eof

pytestmark = [
    pytest.mark.slow,  # payloads of 16 MiB and more, measured in the server's RSS
    pytest.mark.skipif(
        not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/PID/clear_refs"
    ),
]

MiB = 1024 * 1024
SIZE = 16 * MiB
TIMEOUT = 120


def serve(framing: str) -> ServerProcess:
    # A fresh process per test: memory an earlier message freed stays in the
    # process (the allocator keeps it) and would hide the next one's.
    return ServerProcess(
        [
            sys.executable,
            "-m",
            "rawproto",
            "serve",
            framing,
            f"tests.tcpy_pyts.budget_servers:{framing}",
            "--port",
            "0",
        ]
    )


@pytest.fixture
def tcpy_server() -> Iterator[ServerProcess]:
    process = serve("tcpy")
    yield process
    process.stop()


@pytest.fixture
def pyts_server() -> Iterator[ServerProcess]:
    process = serve("pyts")
    yield process
    process.stop()


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def measured(pid: int, exchange: Any, size: int) -> tuple[Any, float]:
    """``exchange()``'s answer, and the peak memory the server took for it / ``size``."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = psutil.Process(pid).memory_info().rss
    answer = exchange()
    return answer, (_vm_hwm(pid) - before) / size


def _rows(item: bytes) -> bytes:
    """msgpack of ``item`` repeated to SIZE bytes, in arrays of at most 65536."""
    count = SIZE // len(item)
    rows = [min(65536, count - i) for i in range(0, count, 65536)]
    return (
        b"\xdd"
        + len(rows).to_bytes(4, "big")
        + b"".join(b"\xdd" + n.to_bytes(4, "big") + item * n for n in rows)
    )


def _records(size: int) -> list[dict[str, object]]:
    rnd = random.Random(5)
    return [
        {
            "id": 100_000 + i,
            "name": f"user{i}",
            "email": f"user{i}@example.com",
            "score": rnd.random() * 100,
            "active": i % 2 == 0,
        }
        for i in range(size // 85)
    ]


# --- tcpy ------------------------------------------------------------------------------------


def tcpy_request(data: bytes) -> bytes:
    """``{"cmd": "size", "data": <data, already msgpack>}`` as one tcpy frame."""
    payload = b"\x82\xa3cmd\xa4size\xa4data" + data
    return struct.pack(">I", len(payload)) + payload


_PID = msgpack.packb({"cmd": "pid"})
PID_FRAME = struct.pack(">I", len(_PID)) + _PID


def tcpy_reply(sock: socket.socket) -> dict[str, Any]:
    (n,) = struct.unpack(">I", recv_exactly(sock, 4))
    reply: dict[str, Any] = msgpack.unpackb(recv_exactly(sock, n))
    return reply


def tcpy_call(port: int, frame: bytes) -> tuple[dict[str, Any], bool]:
    """The reply to ``frame``, and whether the server closed the connection after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(frame)
        reply = tcpy_reply(sock)
        # A second request tells whether the connection is still open, without
        # waiting out a timeout: a closed one gives EOF (or a reset) instead of a reply.
        try:
            sock.sendall(PID_FRAME)
            closed = sock.recv(4, socket.MSG_PEEK) == b""
        except (ConnectionResetError, BrokenPipeError):
            closed = True
    return reply, closed


def tcpy_pid(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(PID_FRAME)
        return int(tcpy_reply(sock)["pid"])


TCPY_WORST = {"[] * n": b"\x90", "{} * n": b"\x80", "uint16 * n": b"\xcd\x01\x01"}


@pytest.mark.parametrize("name", TCPY_WORST)
def test_a_tcpy_message_of_the_worst_shape_is_refused_before_it_takes_memory(
    tcpy_server: ServerProcess, name: str
) -> None:
    frame = tcpy_request(_rows(TCPY_WORST[name]))
    pid = _pid_of(tcpy_server, "tcpy")
    (reply, closed), ratio = measured(pid, lambda: tcpy_call(tcpy_server.port, frame), len(frame))
    print(f"tcpy {name}: peak {ratio:.1f}x the message")
    assert reply["error"] is True and closed
    assert reply["message"].startswith(f"msgpack body of {len(frame) - 4} bytes would take ")
    assert "over the 144.0 MiB allowed (9x its size)" in reply["message"]
    assert ratio <= 5, ratio  # the message itself, and the walk's view of it


def test_a_big_tcpy_message_that_fits_the_budget_stays_within_10x(
    tcpy_server: ServerProcess,
) -> None:
    records = _records(SIZE)
    rows = [records[i : i + 65536] for i in range(0, len(records), 65536)]
    frame = tcpy_request(msgpack.packb(rows))
    pid = _pid_of(tcpy_server, "tcpy")
    (reply, closed), ratio = measured(pid, lambda: tcpy_call(tcpy_server.port, frame), len(frame))
    print(f"tcpy records: peak {ratio:.1f}x the message")
    assert reply == {"success": True, "items": len(rows)} and not closed
    assert ratio <= 10, ratio


def test_a_tcpy_message_over_max_structured_size_is_refused_from_its_length(
    tcpy_server: ServerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", tcpy_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(struct.pack(">I", 64 * MiB + 1))  # no payload follows
        data = recv_until_eof(sock)
    assert msgpack.unpackb(data[4:]) == {
        "error": True,
        "message": f"a message of {64 * MiB + 1} bytes exceeds the limit of {64 * MiB} bytes "
        "for msgpack (max_structured_size)",
    }


# --- pyts ------------------------------------------------------------------------------------


def pyts_document(endpoint: str, body: bytes) -> bytes:
    headers = {
        "VERSION": "PYTS/1.0.0",
        "type": "REQUEST",
        "REQUEST-URL": f"pytf://127.0.0.1:1{endpoint}",
        "HOST": "127.0.0.1",
        "PORT": 1,
        "ENDPOINT": endpoint,
    }
    return b'{"headers": ' + json.dumps(headers).encode() + b', "body": ' + body + b"}"


def pyts_call(port: int, document: bytes) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(document)
        answer: dict[str, Any] = json.loads(recv_until_eof(sock))
    return answer


PYTS_WORST = {"[[],...]": b"[],", '[{"":0},...]': b'{"":0},', "[0,...]": b"0,"}


@pytest.mark.parametrize("name", PYTS_WORST)
def test_a_pyts_document_of_the_worst_shape_is_refused_before_it_takes_memory(
    pyts_server: ServerProcess, name: str
) -> None:
    item = PYTS_WORST[name]
    document = pyts_document("/size", b"[" + item * (SIZE // len(item)) + b"0]")
    pid = _pid_of(pyts_server, "pyts")
    answer, ratio = measured(pid, lambda: pyts_call(pyts_server.port, document), len(document))
    print(f"pyts {name}: peak {ratio:.1f}x the document")
    assert answer["headers"]["STATUS"] == "413 Payload Too Large"
    assert answer["body"].startswith(f"JSON body of {len(document)} bytes would take about ")
    assert ratio <= 5, ratio


def test_a_big_pyts_document_that_fits_the_budget_stays_within_10x(
    pyts_server: ServerProcess,
) -> None:
    records = _records(SIZE)
    document = pyts_document("/size", json.dumps(records).encode())
    pid = _pid_of(pyts_server, "pyts")
    answer, ratio = measured(pid, lambda: pyts_call(pyts_server.port, document), len(document))
    print(f"pyts records: peak {ratio:.1f}x the document")
    assert (answer["headers"]["STATUS-CODE"], answer["body"]) == (200, len(records))
    assert ratio <= 10, ratio


def _pid_of(server: ServerProcess, framing: str) -> int:
    if framing == "tcpy":
        return tcpy_pid(server.port)
    return int(pyts_call(server.port, pyts_document("/pid", b"null"))["body"])
