"""Files both ways with the native clients: ``send(resource, file, into=..., progress=...)``.

The same API as ``HTTPDataClient.send``, for ``RawDataClient`` and
``AsyncRawDataClient`` alike (each test runs with both): a path or binary
file object as the payload is streamed as bytes, ``into`` streams the reply
into a file or a path and returns the bytes written, ``progress`` sees both
directions, a ``str`` payload is text and never a path. The constant-memory
round trip of a 500 MB file is the slow test at the end, measured as the
client process's own peak resident size.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataserve.core.errors import NotHandled
from rawproto import AsyncRawDataClient, BackgroundRawServer, RawDataClient
from tests.conftest import ROOT, ServerProcess

MiB = 1024 * 1024


def handler(resource: str, payload: Any) -> Any:
    if resource == "/echo":
        return payload
    if resource == "/describe":
        return {"type": type(payload).__name__, "len": len(payload)}
    return None


@pytest.fixture(scope="module")
def server() -> Any:
    with BackgroundRawServer(handler) as running:
        yield running


Send = Callable[..., Any]


@pytest.fixture(params=["blocking", "asyncio"])
def send(request: pytest.FixtureRequest, server: BackgroundRawServer) -> Send:
    """``send(resource, payload, **kwargs)`` with one client or the other."""
    if request.param == "blocking":

        def blocking(resource: str, payload: Any = None, **kwargs: Any) -> Any:
            with RawDataClient(server.port) as client:
                return client.send(resource, payload, **kwargs)

        return blocking

    def asynchronous(resource: str, payload: Any = None, **kwargs: Any) -> Any:
        async def main() -> Any:
            async with AsyncRawDataClient(server.port) as client:
                return await client.send(resource, payload, **kwargs)

        return asyncio.run(main())

    return asynchronous


def content(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


@pytest.mark.parametrize("size", [0, 1000, 3 * MiB + 7])
def test_a_path_goes_as_bytes_and_the_answer_into_a_path(
    send: Send, tmp_path: Path, size: int
) -> None:
    source, target = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(content(size))
    assert send("/echo", source, into=target) == size
    assert target.read_bytes() == content(size)
    assert send("/describe", source) == {"type": "bytes", "len": size}


def test_a_file_object_is_sent_from_its_position_and_left_open(send: Send, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(content(2 * MiB))
    with open(source, "rb") as file:
        file.seek(MiB)
        assert send("/echo", file) == content(2 * MiB)[MiB:]
        assert not file.closed


def test_streams_of_unknown_length_are_sent_whole(send: Send) -> None:
    read, write = os.pipe()
    data = content(MiB + 3)

    def feed() -> None:
        with os.fdopen(write, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read, "rb") as pipe:
        assert send("/echo", pipe) == data
    writer.join()
    assert send("/echo", io.BytesIO(b"in memory")) == b"in memory"


def test_into_a_file_object_writes_what_the_server_encoded(send: Send) -> None:
    sink = io.BytesIO()
    assert send("/describe", b"abc", into=sink) == len(b'{"type":"bytes","len":3}')
    assert json.loads(sink.getvalue()) == {"type": "bytes", "len": 3}
    large = io.BytesIO()
    assert send("/echo", content(2 * MiB), into=large) == 2 * MiB
    assert large.getvalue() == content(2 * MiB)


def test_progress_counts_both_directions(send: Send, tmp_path: Path) -> None:
    source, target = tmp_path / "in.bin", tmp_path / "out.bin"
    size = 5 * MiB + 1
    source.write_bytes(content(size))
    seen: dict[str, list[tuple[int, int | None]]] = {"send": [], "receive": []}
    send("/echo", source, into=target, progress=lambda d, n, t: seen[d].append((n, t)))
    for direction in ("send", "receive"):
        done = [n for n, _ in seen[direction]]
        assert done[0] == 0 and done[-1] == size and done == sorted(done)
        assert {t for _, t in seen[direction]} == {size}
    assert len(seen["send"]) > 2  # in pieces, not once at the end


def test_an_error_answer_raises_and_never_touches_the_target(send: Send, tmp_path: Path) -> None:
    fresh, existing = tmp_path / "fresh.bin", tmp_path / "existing.bin"
    existing.write_bytes(b"keep")
    for target in (fresh, existing):
        with pytest.raises(NotHandled):
            send("/nowhere", content(2 * MiB), into=target)
    assert not fresh.exists() and existing.read_bytes() == b"keep"


def test_a_str_is_text_never_a_path(send: Send, tmp_path: Path) -> None:
    path = tmp_path / "name.txt"
    path.write_text("not this")
    assert send("/echo", str(path)) == str(path)


def test_a_file_opened_as_text_is_refused(send: Send, tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("x")
    with open(path) as text, pytest.raises(TypeError, match="binary mode"):
        send("/echo", text)


_ROUND_TRIP = """
import asyncio, json, sys
from pathlib import Path
from rawproto import AsyncRawDataClient, RawDataClient

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

kind, port, source, target = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if kind == "blocking":
    with RawDataClient(port, timeout=300) as client:
        client.send("/echo", b"warm")  # imports and the connection: not the transfer
        Path("/proc/self/clear_refs").write_text("5")
        before = status("VmRSS")
        n = client.send("/echo", Path(source), into=target)
else:
    async def main():
        async with AsyncRawDataClient(port, timeout=300) as client:
            await client.send("/echo", b"warm")
            Path("/proc/self/clear_refs").write_text("5")
            before = status("VmRSS")
            return before, await client.send("/echo", Path(source), into=target)
    before, n = asyncio.run(main())
print(json.dumps({"written": n, "taken": status("VmHWM") - before}))
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["blocking", "asyncio"])
def test_a_500_mb_round_trip_costs_the_client_little_memory(tmp_path: Path, kind: str) -> None:
    size = 500 * 1000 * 1000
    source, target = tmp_path / "in.bin", tmp_path / "out.bin"
    block = content(MiB)
    with open(source, "wb") as f:
        for _ in range(size // MiB):
            f.write(block)
        f.write(block[: size % MiB])
    example = "dataserve.example:ExampleHandler"
    server = ServerProcess(
        [sys.executable, "-m", "rawproto", "serve", "native", example, "--port", "0"]
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", _ROUND_TRIP, kind, str(server.port), str(source), str(target)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=str(ROOT),
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["written"] == size and target.stat().st_size == size
    with open(source, "rb") as a, open(target, "rb") as b:
        while chunk := a.read(16 * MiB):
            assert b.read(len(chunk)) == chunk
    # The client's peak resident size during the transfer, above its size before.
    assert result["taken"] <= 64 * MiB, f"the round trip took {result['taken'] / MiB:.0f} MiB"
