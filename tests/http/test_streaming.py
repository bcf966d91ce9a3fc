"""Streaming clients: file payloads out, replies ``into`` files, Unix sockets,
``dataserve send --file``; and the memory a 500 MB round trip costs."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import pty
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from dataserve import (
    AsyncHTTPDataClient,
    ConnectionClosed,
    HTTPDataClient,
    NotHandled,
    PayloadTooLarge,
    create_app,
)
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.http.server import BackgroundLoop, BackgroundServer, uvicorn_config
from tests.conftest import ServerProcess

from .conftest import EchoHandler

MiB = 1024 * 1024


def client_for(server: BackgroundServer) -> HTTPDataClient:
    return HTTPDataClient(server.port, "http://127.0.0.1:")


def both(server: BackgroundServer, call: Any) -> list[Any]:
    """``call(client)`` with the blocking client, then with the async one
    (``call`` may return an awaitable): the two answers."""
    with client_for(server) as client:
        sync = call(client)

    async def main() -> Any:
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
            return await call(client)

    return [sync, asyncio.run(main())]


def pattern(size: int) -> bytes:
    """Bytes that differ at every offset modulo 251 (a prime): a misplaced
    piece does not compare equal."""
    return bytes(range(251)) * (size // 251) + bytes(range(size % 251))


async def framing_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers how the request was framed and what it carried, as JSON."""
    if scope["type"] != "http":
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    answer = {
        "content-type": headers.get("content-type"),
        "content-length": headers.get("content-length"),
        "transfer-encoding": headers.get("transfer-encoding"),
        "size": size,
    }
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


class FsPath:
    """An ``os.PathLike`` that is not a ``pathlib.Path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


class OnlyRead:
    """A file-like object with nothing but ``read``: its length is unknown."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._data.read(n)


# --- file payloads -----------------------------------------------------------


def test_a_path_or_a_seekable_file_goes_with_its_length(serve: Any, tmp_path: Path) -> None:
    server = serve(framing_app)
    path = tmp_path / "payload.bin"
    path.write_bytes(pattern(3 * MiB + 5))
    with client_for(server) as client, path.open("rb") as file:
        file.seek(MiB)  # only what is left from the position is sent
        answers = [
            client.send("/x", path),
            client.send("/x", FsPath(str(path))),
            client.send("/x", file),
            client.send("/x", io.BytesIO(b"abc")),
        ]
    sizes = [3 * MiB + 5, 3 * MiB + 5, 2 * MiB + 5, 3]
    for answer, size in zip(answers, sizes, strict=True):
        assert answer == {
            "content-type": "application/octet-stream",
            "content-length": str(size),
            "transfer-encoding": None,
            "size": size,
        }


def test_a_stream_of_unknown_length_goes_chunked(serve: Any) -> None:
    server = serve(framing_app)
    data = pattern(2 * MiB + 7)
    read_end, write_end = os.pipe()

    def feed() -> None:
        with open(write_end, "wb") as w:
            w.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    with client_for(server) as client, open(read_end, "rb") as pipe:
        from_pipe = client.send("/x", pipe)
    writer.join()
    from_reader = both(server, lambda c: c.send("/x", OnlyRead(data)))
    for answer in [from_pipe, *from_reader]:
        assert answer == {
            "content-type": "application/octet-stream",
            "content-length": None,
            "transfer-encoding": "chunked",
            "size": len(data),
        }


def test_file_payload_round_trip_both_clients(
    echo_server: BackgroundServer, tmp_path: Path
) -> None:
    data = pattern(5 * MiB + 3)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    assert both(echo_server, lambda c: c.send("/echo", path)) == [data, data]
    assert both(echo_server, lambda c: c.send("/echo", OnlyRead(data))) == [data, data]


def test_a_str_payload_is_text_never_a_path(echo_server: BackgroundServer, tmp_path: Path) -> None:
    path = tmp_path / "exists.txt"
    path.write_bytes(b"file content")
    assert both(echo_server, lambda c: c.send("/echo", str(path))) == [str(path)] * 2


def test_a_text_mode_file_is_refused(echo_server: BackgroundServer, tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("text")
    with (
        client_for(echo_server) as client,
        path.open() as text,
        pytest.raises(TypeError, match="binary mode"),
    ):
        client.send("/echo", text)


def test_a_path_payload_is_closed_after_the_call(
    echo_server: BackgroundServer, tmp_path: Path
) -> None:
    path = tmp_path / "payload.bin"
    path.write_bytes(b"x" * 10)

    def open_on_path() -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path))

    with client_for(echo_server) as client:
        assert client.send("/echo", path) == b"x" * 10
        # the traceback keeps the call's frame, and its file object, alive:
        # only an explicit close releases the descriptor
        with pytest.raises(NotHandled) as info:
            client.send("/nope", path)
        assert client.send("/echo", path, into=tmp_path / "reply.bin") == 10
        assert open_on_path() == 0
        assert info.traceback  # still held here


def test_a_streamed_upload_over_the_limit_gets_413(serve: Any, tmp_path: Path) -> None:
    server = serve(create_app(EchoHandler, limits=Limits(max_body_size=MiB)))
    path = tmp_path / "big.bin"
    path.write_bytes(pattern(16 * MiB))
    with client_for(server) as client:
        with pytest.raises(PayloadTooLarge, match="over the limit"):
            client.send("/echo", path)
        with pytest.raises(PayloadTooLarge, match="over the limit"):
            client.send("/echo", OnlyRead(pattern(16 * MiB)))  # chunked
        assert client.send("/echo", "still serving") == "still serving"


# --- replies into files ------------------------------------------------------


def test_reply_into_a_path_or_a_file(echo_server: BackgroundServer, tmp_path: Path) -> None:
    data = pattern(3 * MiB + 1)
    outputs = [tmp_path / "sync.bin", tmp_path / "async.bin"]

    def call(client: Any) -> Any:
        return client.send("/echo", data, into=outputs.pop(0))

    assert both(echo_server, call) == [len(data), len(data)]
    assert (tmp_path / "sync.bin").read_bytes() == data
    assert (tmp_path / "async.bin").read_bytes() == data


def test_reply_into_a_file_object_is_written_as_the_server_encoded_it(
    echo_server: BackgroundServer, tmp_path: Path
) -> None:
    for payload, body in [("text ü", "text ü".encode()), ([1, 2], b"[1,2]"), (b"\x00", b"\x00")]:
        sinks: list[io.BytesIO] = []

        def call(client: Any, payload: Any = payload, sinks: list[io.BytesIO] = sinks) -> Any:
            sinks.append(io.BytesIO())
            return client.send("/echo", payload, into=sinks[-1])

        assert both(echo_server, call) == [len(body), len(body)]
        assert [s.getvalue() for s in sinks] == [body, body]
        assert not any(s.closed for s in sinks)  # a file object is left open


def test_an_error_reply_raises_and_leaves_the_file_alone(
    echo_server: BackgroundServer, tmp_path: Path
) -> None:
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"earlier content")
    absent = tmp_path / "absent.bin"
    for into in (kept, absent):
        for client_call in both_raising(echo_server, "/nope", into):
            assert "resource '/nope' is not handled" in client_call
    assert kept.read_bytes() == b"earlier content"
    assert not absent.exists()


def both_raising(server: BackgroundServer, resource: str, into: Path) -> list[str]:
    """The NotHandled message each client raises for ``resource``."""
    messages = []
    with client_for(server) as client, pytest.raises(NotHandled) as info:
        client.send(resource, b"x", into=into)
    messages.append(str(info.value))

    async def main() -> None:
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
            await client.send(resource, b"x", into=into)

    with pytest.raises(NotHandled) as info:
        asyncio.run(main())
    messages.append(str(info.value))
    return messages


async def cut_short(scope: Any, receive: Any, send: Any) -> None:
    """Announces 10 MiB, sends 1 MiB, then fails: the connection is dropped."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(10 * MiB).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"x" * MiB, "more_body": True})
    raise RuntimeError("the reply is cut short")


def test_a_reply_cut_short_removes_the_file_it_created(serve: Any, tmp_path: Path) -> None:
    server = serve(cut_short)
    sync_out, async_out = tmp_path / "sync.bin", tmp_path / "async.bin"
    with client_for(server) as client, pytest.raises(ConnectionClosed):
        client.send("/x", into=sync_out)

    async def main() -> None:
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
            await client.send("/x", into=async_out)

    with pytest.raises(ConnectionClosed):
        asyncio.run(main())
    assert not sync_out.exists() and not async_out.exists()


def test_progress_reports_both_directions(echo_server: BackgroundServer, tmp_path: Path) -> None:
    data = pattern(3 * MiB + 10)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    calls: list[list[tuple[str, int, int | None]]] = [[], []]

    def call(client: Any) -> Any:
        seen = calls[0] if isinstance(client, HTTPDataClient) else calls[1]
        return client.send("/echo", path, into=io.BytesIO(), progress=lambda *a: seen.append(a))

    assert both(echo_server, call) == [len(data), len(data)]
    for seen in calls:
        sent = [c for c in seen if c[0] == "send"]
        received = [c for c in seen if c[0] == "receive"]
        assert seen == sent + received  # the body goes out before the reply comes in
        for series in (sent, received):
            assert series[0] == (series[0][0], 0, len(data))
            assert series[-1] == (series[0][0], len(data), len(data))
            done = [c[1] for c in series]
            assert done == sorted(done) and len(done) >= 3


# --- Unix domain sockets -----------------------------------------------------


@pytest.fixture
def uds_path() -> Iterator[str]:
    """A short socket path: sun_path holds about 100 bytes."""
    with tempfile.TemporaryDirectory(prefix="ds-") as folder:
        yield os.path.join(folder, "http.sock")


@pytest.fixture
def uds_server(uds_path: str) -> Iterator[str]:
    """The echo app served by uvicorn on a Unix socket; yields its path.

    The socket is bound and listening before the server starts, so a client
    that connects at once waits in the backlog instead of being refused.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(uds_path)
    sock.listen(128)
    server = uvicorn.Server(uvicorn_config(create_app(EchoHandler), DEFAULT_LIMITS))
    loop = BackgroundLoop.shared()
    running = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), loop.loop)
    yield uds_path
    server.should_exit = True
    running.result(timeout=30)
    sock.close()


def test_both_clients_over_a_unix_socket(uds_server: str, tmp_path: Path) -> None:
    data = pattern(3 * MiB + 2)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    out = tmp_path / "reply.bin"
    with HTTPDataClient(uds=uds_server) as client:
        assert client.url == "http://localhost"
        assert client.send("/echo", [4, 5, 6]) == [4, 5, 6]
        assert client.send("/echo", path, into=out) == len(data)
    assert out.read_bytes() == data

    async def main() -> list[Any]:
        async with AsyncHTTPDataClient(uds=Path(uds_server)) as client:
            return list(await asyncio.gather(*(client.send("/echo", [i]) for i in range(20))))

    assert asyncio.run(main()) == [[i] for i in range(20)]


def test_a_unix_socket_nobody_listens_on(uds_path: str) -> None:
    from dataserve import ConnectError

    with HTTPDataClient(uds=uds_path) as client, pytest.raises(ConnectError):
        client.send("/echo", 1)


def test_a_port_or_a_socket_is_needed() -> None:
    with pytest.raises(TypeError, match="uds="):
        HTTPDataClient()


# --- dataserve send ----------------------------------------------------------

DATASERVE = [sys.executable, "-m", "dataserve"]


@pytest.fixture(scope="module")
def echo_process() -> Iterator[ServerProcess]:
    server = ServerProcess([*DATASERVE, "serve", "tests.http.handlers:Echo", "--port", "0"])
    yield server
    assert server.stop() == 0


def test_send_file_streams_the_reply_to_a_file_or_stdout(
    echo_process: ServerProcess, tmp_path: Path
) -> None:
    data = pattern(6 * MiB + 1)
    src, out = tmp_path / "src.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    url = echo_process.url
    done = subprocess.run(
        [*DATASERVE, "send", url, "/echo", "--file", str(src), "-o", str(out)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"" and done.stderr == b""  # no bar: stderr is a pipe
    assert out.read_bytes() == data
    done = subprocess.run(
        [*DATASERVE, "send", url, "/echo", "--file", "-"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == data
    done = subprocess.run(
        [*DATASERVE, "send", url, "/echo", "--json", "[1, 2]", "-o", str(out)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0 and out.read_bytes() == b"[1,2]"


def test_send_file_errors_are_one_line(echo_process: ServerProcess, tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    done = subprocess.run(
        [*DATASERVE, "send", echo_process.url, "/echo", "--file", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # a flag naming no file is a usage error: one line naming the flag, status 2
    assert done.returncode == 2
    assert done.stderr.endswith(f"error: argument --file: {missing} does not exist\n")
    assert done.stderr.count("\n") == 1
    out = tmp_path / "kept.bin"
    out.write_bytes(b"kept")
    done = subprocess.run(
        [*DATASERVE, "send", echo_process.url, "/none", "--text", "x", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == "dataserve: error: 404: resource '/none' is not handled\n"
    assert out.read_bytes() == b"kept"


def stderr_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal of 100 columns; its exit
    status and what it drew there."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the last holder of the terminal exited
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return proc.wait(60), drawn.decode("utf-8", "replace")


def test_send_shows_progress_bars_on_a_terminal_for_big_transfers(
    echo_process: ServerProcess, tmp_path: Path
) -> None:
    src, out = tmp_path / "src.bin", tmp_path / "out.bin"
    src.write_bytes(pattern(24 * MiB))
    status, drawn = stderr_on_a_terminal(
        [*DATASERVE, "send", echo_process.url, "/echo", "--file", str(src), "-o", str(out)]
    )
    assert status == 0, drawn
    assert "sent: 100%" in drawn and "received: 100%" in drawn and "24.0M/24.0M" in drawn
    assert out.stat().st_size == 24 * MiB
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 1000)
    status, drawn = stderr_on_a_terminal(
        [*DATASERVE, "send", echo_process.url, "/echo", "--file", str(small), "-o", str(out)]
    )
    assert status == 0 and drawn == ""  # a small transfer draws nothing


# --- memory: a 500 MB round trip ---------------------------------------------

ROUND_TRIP = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from dataserve import AsyncHTTPDataClient, HTTPDataClient
    from dataserve.cli import main

    how, port, src, dst = sys.argv[1:]

    def hwm():
        with open('/proc/self/status') as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith('VmHWM:'))

    idle = hwm()
    if how == 'sync':
        with HTTPDataClient(port, 'http://127.0.0.1:') as client:
            written = client.send('/echo', Path(src), into=Path(dst))
    elif how == 'async':
        async def go():
            async with AsyncHTTPDataClient(port, 'http://127.0.0.1:') as client:
                return await client.send('/echo', Path(src), into=Path(dst))
        written = asyncio.run(go())
    else:
        assert main(['send', 'http://127.0.0.1:' + port, '/echo', '--file', src, '-o', dst]) == 0
        written = Path(dst).stat().st_size
    print(written, idle, hwm())
    """
)
ROUND_TRIP_SIZE = 500 * 1000 * 1000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "500MB.bin"
    block = os.urandom(MiB)
    with path.open("wb") as f:
        for _ in range(ROUND_TRIP_SIZE // MiB):
            f.write(block)
        f.write(block[: ROUND_TRIP_SIZE % MiB])
    return path


def same_content(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            pa, pb = fa.read(4 * MiB), fb.read(4 * MiB)
            if pa != pb:
                return False
            if not pa:
                return True


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sync", "async", "cli"])
def test_500_mb_round_trip_costs_the_client_at_most_64_mib(
    how: str, echo_process: ServerProcess, big_file: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "reply.bin"
    done = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP, how, str(echo_process.port), str(big_file), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    written, idle, peak = map(int, done.stdout.split())
    assert written == ROUND_TRIP_SIZE
    assert peak <= 64 * MiB, f"client peak RSS {peak / MiB:.1f} MiB (idle {idle / MiB:.1f} MiB)"
    assert same_content(big_file, dst)
