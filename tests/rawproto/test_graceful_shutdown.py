"""SIGTERM with 100 requests in flight, on each raw protocol, with real server processes.

Each server script prints its address, then ``in flight: 100`` once 100
handlers are running; they all wait until the test writes a line to the
server's stdin. So the test sends SIGTERM while every one of them is in
flight, checks that new connections are refused, releases the handlers and
checks that all 100 got their answer and the server exited 0. Nothing sleeps
to synchronise.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rawproto import AsyncRawDataClient, ServiceUnavailable
from rawproto.pyts import Request
from rawproto.tcpy import TCPClient
from rawproto.tinyproto import TinyProtoClient, TinyProtoConnection
from tests.conftest import ROOT, wait_until_refused

N = 100
TIMEOUT = 60.0

# The handlers' shared part: count, say when N are in, wait for the release.
PRELUDE = """
import asyncio, sys, threading
N = 100
lock = threading.Lock()
entered = 0
release = threading.Event()

def enter():
    global entered
    with lock:
        entered += 1
        if entered == N:
            print(f"in flight: {N}", flush=True)

def wait_for_stdin():
    sys.stdin.readline()
    release.set()

threading.Thread(target=wait_for_stdin, daemon=True).start()
"""

NATIVE = (
    PRELUDE
    + """
import rawproto

async def handler(resource, payload):
    enter()
    await asyncio.to_thread(release.wait)  # off the loop: the loop stays free
    return "finished"

limits = rawproto.Limits(shutdown_timeout=float(sys.argv[1]))
rawproto.serve(handler, 0, limits=limits, banner=lambda url: print(url, flush=True))
"""
)

TCPY = (
    PRELUDE
    + """
from rawproto.tcpy import TCPServer, TCPHandler

class Slow(TCPHandler):
    def execute(self):
        enter()
        release.wait()
        return self.success(result="finished")

TCPServer("127.0.0.1", 0, {"slow": Slow}, threads=N).listen()
"""
)

PYTS = (
    PRELUDE
    + """
from rawproto.pyts import Server

def slow(request, response):
    enter()
    release.wait()
    response.setStatus(200, "OK")
    response.setBody("finished")
    response.SendResponse()

app = Server("127.0.0.1", 0, threads=N)
app.routeHandler("/slow", slow)
app.startServer()
"""
)

TINYPROTO = (
    PRELUDE
    + """
from rawproto.tinyproto import TinyProtoServer, TinyProtoConnection

class Slow(TinyProtoConnection):
    def transmission_received(self, msg):
        enter()
        release.wait()
        self.transmit(b"finished: " + bytes(msg))

class Server(TinyProtoServer):
    def pre_loop(self):
        print(f"listening on 127.0.0.1:{self.ports[0]}", flush=True)

server = Server()
server.set_conn_handler(Slow)
server.add_addr("127.0.0.1", 0)
server.start()
"""
)


class Script:
    """A server script in a subprocess: stdout read line by line, stdin to release it."""

    def __init__(self, code: str, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        line = self.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, line
        self.port = int(match.group(1))

    def readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the server ended: {self.proc.communicate()[1]}")
        return line.strip()

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def wait(self) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=TIMEOUT)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def script() -> Iterator[Callable[..., Script]]:
    started: list[Script] = []

    def start(code: str, *args: str) -> Script:
        started.append(Script(code, *args))
        return started[-1]

    yield start
    for s in started:
        s.kill()


def in_background(fn: Callable[[], list[Any]]) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.extend(fn()), daemon=True)
    thread.start()
    return thread, results


def drain_under_sigterm(server: Script, requests: Callable[[], list[Any]]) -> list[Any]:
    thread, results = in_background(requests)
    assert server.readline() == f"in flight: {N}"
    server.proc.send_signal(signal.SIGTERM)
    wait_until_refused(server.port)
    server.release()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    status, err = server.wait()
    assert status == 0, err
    return results


def native_requests(port: int) -> Callable[[], list[Any]]:
    async def main() -> list[Any]:
        clients = [AsyncRawDataClient(port, token="") for _ in range(10)]
        try:
            calls = [clients[i % 10].send("/slow", i) for i in range(N)]
            return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            for client in clients:
                await client.aclose()

    return lambda: asyncio.run(main())


def threaded(call: Callable[[int], Any]) -> Callable[[], list[Any]]:
    def run() -> list[Any]:
        out: list[Any] = [None] * N

        def one(i: int) -> None:
            try:
                out[i] = call(i)
            except Exception as exc:  # reported in the assertion
                out[i] = exc

        threads = [threading.Thread(target=one, args=(i,)) for i in range(N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        return out

    return run


def test_native(script: Callable[..., Script]) -> None:
    server = script(NATIVE, "30")
    results = drain_under_sigterm(server, native_requests(server.port))
    assert results == ["finished"] * N


def test_native_past_the_grace_period_answers_503(script: Callable[..., Script]) -> None:
    server = script(NATIVE, "0.5")  # the handlers are never released
    thread, results = in_background(native_requests(server.port))
    assert server.readline() == f"in flight: {N}"
    server.proc.send_signal(signal.SIGTERM)
    thread.join(TIMEOUT)
    status, err = server.wait()
    assert status == 0, err
    assert len(results) == N
    assert all(isinstance(r, ServiceUnavailable) for r in results), results[:3]
    assert "shut down before the handler answered" in str(results[0])


def test_tcpy(script: Callable[..., Script]) -> None:
    server = script(TCPY)
    results = drain_under_sigterm(
        server,
        threaded(lambda i: TCPClient("127.0.0.1", server.port, timeout=TIMEOUT).execute("slow")),
    )
    assert results == [{"success": True, "result": "finished"}] * N


def test_pyts(script: Callable[..., Script]) -> None:
    server = script(PYTS)

    def call(i: int) -> Any:
        response = Request("127.0.0.1", server.port, "/slow", timeout=TIMEOUT).SendRequest()
        return response.StatusCode, response.Body

    results = drain_under_sigterm(server, threaded(call))
    assert results == [(200, "finished")] * N


class Collect(TinyProtoConnection):
    answers: list[bytes] = []
    arrived = threading.Semaphore(0)

    def transmission_received(self, msg: bytearray) -> None:
        self.answers.append(bytes(msg))
        self.arrived.release()


def test_tinyproto(script: Callable[..., Script]) -> None:
    server = script(TINYPROTO)
    Collect.answers = []
    Collect.arrived = threading.Semaphore(0)
    client = TinyProtoClient(timeout=TIMEOUT)
    client.set_conn_handler(Collect)
    for _ in range(N):
        client.connect_to("127.0.0.1", server.port)

    def requests() -> list[Any]:
        for i, conn in enumerate(client.active_connections):
            conn.transmit(b"%d" % i)  # returns once the server accepted it
        for _ in range(N):
            assert Collect.arrived.acquire(timeout=TIMEOUT)
        return sorted(Collect.answers)

    try:
        results = drain_under_sigterm(server, requests)
    finally:
        client.shutdown = True
        for conn in client.active_connections:
            conn.shutdown = True
            conn.join(TIMEOUT)
    assert results == sorted(b"finished: %d" % i for i in range(N))
