"""The budget for decoded structures, measured as the server's own resident memory.

The server runs in its own process; before each request its peak resident
size is reset (``/proc/PID/clear_refs``), and after it the peak (``VmHWM``)
is compared with the resident size before: the memory one request took.
Before the budget, a body of empty arrays took 31x its size (JSON) and 76x
(msgpack), and was answered 200.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgpack
import psutil
import pytest

from tests.conftest import ServerProcess

pytestmark = [
    pytest.mark.slow,  # payloads of 16 MiB and more, measured in the server's RSS
    pytest.mark.skipif(
        not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/PID/clear_refs"
    ),
]

MiB = 1024 * 1024
SIZE = 16 * MiB


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    # A fresh process per test: memory freed by an earlier request stays in
    # the process (the allocator keeps it) and would hide the next one's.
    process = ServerProcess(
        [
            sys.executable,
            "-m",
            "dataserve",
            "serve",
            "tests.http.budget_handlers:Summary",
            "--port",
            "0",
        ]
    )
    yield process
    process.stop()


def peak_over_baseline(server: ServerProcess, content_type: str, body: bytes) -> tuple[int, float]:
    """Send ``body``; ``(status, peak resident memory it took / len(body))``."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        pid = client.put("/pid", content=b"", headers={"content-type": "text/plain"}).json()
        process = psutil.Process(pid)
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = process.memory_info().rss
        response = client.put("/", content=body, headers={"content-type": content_type})
        peak = _vm_hwm(pid)
    return response.status_code, (peak - before) / len(body)


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _json_of(item: bytes) -> bytes:
    return b"[" + item * (SIZE // len(item)) + b"0]"


def _msgpack_rows(item: bytes) -> bytes:
    count = SIZE // len(item)
    rows = [min(65536, count - i) for i in range(0, count, 65536)]
    return (
        b"\xdd"
        + len(rows).to_bytes(4, "big")
        + b"".join(b"\xdd" + n.to_bytes(4, "big") + item * n for n in rows)
    )


WORST = {
    "JSON [[],...]": ("application/json", _json_of(b"[],")),
    'JSON [{"":0},...]': ("application/json", _json_of(b'{"":0},')),
    "JSON [0,...]": ("application/json", _json_of(b"0,")),
    "msgpack \\x90 * n": ("application/msgpack", _msgpack_rows(b"\x90")),
    "msgpack \\x80 * n": ("application/msgpack", _msgpack_rows(b"\x80")),
    "msgpack uint16 * n": ("application/msgpack", _msgpack_rows(b"\xcd\x01\x01")),
}


@pytest.mark.parametrize("name", WORST)
def test_a_worst_shape_is_refused_before_it_takes_memory(server: ServerProcess, name: str) -> None:
    content_type, body = WORST[name]
    status, ratio = peak_over_baseline(server, content_type, body)
    print(f"{name}: {status}, peak {ratio:.1f}x the body")
    # the body itself (read in pieces, then joined), and the counting's copies of it
    assert status == 413 and ratio <= 5, ratio


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


def _rows_of(items: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    return [items[i : i + 65536] for i in range(0, len(items), 65536)]


def _floats(seed: int, n: int) -> list[float]:
    rnd = random.Random(seed)
    return [rnd.random() for _ in range(n)]


# built when a test asks (not at collection): name -> (media type, body)
ACCEPTED: dict[str, Callable[[], tuple[str, bytes]]] = {
    "JSON records": lambda: ("application/json", json.dumps(_records(SIZE)).encode()),
    "JSON floats": lambda: ("application/json", json.dumps(_floats(6, SIZE // 20)).encode()),
    "msgpack records": lambda: ("application/msgpack", msgpack.packb(_rows_of(_records(SIZE)))),
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_an_accepted_big_body_stays_within_10x(server: ServerProcess, name: str) -> None:
    content_type, body = ACCEPTED[name]()
    status, ratio = peak_over_baseline(server, content_type, body)
    print(f"{name}: {status}, peak {ratio:.1f}x the body")
    assert status == 200 and ratio <= 10, ratio
