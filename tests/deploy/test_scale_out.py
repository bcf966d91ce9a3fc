"""Scale out with no Docker engine: real `dataserve serve` replicas behind a real
nginx configured from the template compose.yaml uses.

HTTP: 2,000 PUT requests through nginx spread over two backends; one backend
is killed (SIGKILL) in the middle of the load and restarted on its port: no
request fails, because nginx sends a PUT whose backend refused or dropped the
connection on to the other one. Each backend's own metrics agree with what
the clients saw.

Native TCP (nginx ``stream``): the same load and the same kill. nginx moves
new connections to the live backend; a request in flight on a connection to
the killed one gets ``ConnectionClosed`` and the client sends it again on a
new connection (as docs/deploy.md says clients must): none is lost, and the
backends' native-transport metrics agree with the answers.
"""

from __future__ import annotations

import collections
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataserve.core.errors import TransportError
from rawproto import RawDataClient

from .helpers import Nginx, metric, scrape, serve_process

# Scale-out through a real nginx, thousands of requests; CI runs them.
pytestmark = pytest.mark.slow

TOTAL = 2000
CLIENTS = 8
KILL_AFTER = 500
TRIES = 3  # as nginx's proxy_next_upstream_tries
TCP_ADDRESS = re.compile(r"tcp://127\.0\.0\.1:(\d+)")


class Backend:
    """``dataserve serve`` with HTTP and the native TCP port, restartable on both."""

    def __init__(self, http_port: int = 0, tcp_port: int = 0) -> None:
        self.server = serve_process(
            "handler:Handler", "--port", str(http_port), "--tcp-port", str(tcp_port)
        )
        m = TCP_ADDRESS.search(self.server.line(1))
        assert m, self.server.lines
        self.tcp_port = int(m.group(1))

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def tcp(self) -> str:
        return f"127.0.0.1:{self.tcp_port}"

    def kill_and_restart(self) -> Backend:
        """SIGKILL (no goodbye: in-flight requests are cut), then start again
        on the same ports, where nginx's configuration points."""
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(30)
        return Backend(self.server.port, self.tcp_port)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def started() -> Iterator[list[Backend | Nginx]]:
    things: list[Backend | Nginx] = []
    yield things
    for thing in things:
        thing.stop()


class Load:
    """``CLIENTS`` threads sending ``TOTAL`` requests; at ``KILL_AFTER`` answers
    one backend is killed and restarted; answers are counted by process id."""

    def __init__(self, nginx: Nginx, victim: Backend, started: list[Backend | Nginx]) -> None:
        self.nginx = nginx
        self.victim = victim
        self.started = started
        self.restarted: list[Backend] = []
        self.seen: collections.Counter[int] = collections.Counter()
        self.failures: list[str] = []
        self._done = 0
        self._lock = threading.Lock()
        self._kill_now = threading.Event()

    def answered(self, pid: int) -> None:
        with self._lock:
            self.seen[pid] += 1
            self._done += 1
            if self._done == KILL_AFTER:
                self._kill_now.set()

    def run(self, client: Callable[[int, int], None]) -> None:
        def kill_and_restart() -> None:
            assert self._kill_now.wait(120), "the load never got going"
            self.restarted.append(self.victim.kill_and_restart())
            self.started.append(self.restarted[0])

        killer = threading.Thread(target=kill_and_restart)
        killer.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(client, TOTAL // CLIENTS, w) for w in range(CLIENTS)]
            for future in futures:
                future.result()
        killer.join(60)
        assert not killer.is_alive()
        assert self.failures == [], (
            f"{len(self.failures)} failed, e.g. {self.failures[:3]}\n{self.nginx.log()[-3000:]}"
        )
        assert self._done == TOTAL


def test_put_load_spreads_over_both_backends_and_survives_a_killed_backend(
    tmp_path: Path, started: list[Backend | Nginx]
) -> None:
    a, b = Backend(), Backend()
    started += [a, b]
    nginx = Nginx(tmp_path, [a.http, b.http])
    started.append(nginx)
    pid_a, pid_b = a.pid, b.pid
    load = Load(nginx, a, started)

    def client(requests: int, worker: int) -> None:
        with httpx.Client(base_url=nginx.url, timeout=30) as http:
            for i in range(requests):
                try:
                    r = http.put("/whoami", json={"worker": worker, "i": i})
                except httpx.HTTPError as exc:
                    load.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200:
                    load.failures.append(f"{r.status_code} {r.text}")
                    continue
                body = r.json()
                assert body["payload"] == {"worker": worker, "i": i}
                load.answered(body["pid"])

    load.run(client)
    seen = load.seen
    # Both backends took a share before the kill (round robin).
    assert seen[pid_a] > KILL_AFTER // 10 and seen[pid_b] > KILL_AFTER // 10, seen
    # The kill did hit: nginx saw the backend fail and sent requests on to the
    # other (its access line then names both, "upstream=A, B").
    assert re.search(r"Connection refused|prematurely closed|reset by peer", nginx.log())
    lines = [line for line in nginx.access_log().splitlines() if "upstream=127.0.0.1:" in line]
    assert any(", 127.0.0.1:" in line.partition("upstream=")[2] for line in lines), lines[-5:]

    # The restarted backend is back in rotation once nginx tries it again
    # (fail_timeout=1s): keep sending until it answers, for a bounded time.
    pid_a2 = load.restarted[0].pid
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=nginx.url, timeout=30) as http:
        while seen[pid_a2] < 5 and time.monotonic() < deadline:
            r = http.put("/whoami", json=None)
            assert r.status_code == 200, r.text
            seen[r.json()["pid"]] += 1
    assert seen[pid_a2] >= 5, seen

    # Each live backend's own metrics count exactly the answers it gave.
    for backend, pid in ((b, pid_b), (load.restarted[0], pid_a2)):
        samples = scrape(backend.server.url)
        answered = metric(
            samples, "dataserve_requests_total", transport="http", resource="/whoami", status="200"
        )
        assert answered == seen[pid], (pid, answered, seen)


def test_native_tcp_load_through_nginx_stream_survives_a_killed_backend(
    tmp_path: Path, started: list[Backend | Nginx]
) -> None:
    a, b = Backend(), Backend()
    started += [a, b]
    nginx = Nginx(tmp_path, [a.http, b.http], [a.tcp, b.tcp])
    started.append(nginx)
    pid_a, pid_b = a.pid, b.pid
    load = Load(nginx, a, started)
    resent: list[str] = []

    def send(raw: RawDataClient, payload: Any) -> Any:
        for _ in range(TRIES - 1):
            try:
                return raw.send("/whoami", payload)
            except TransportError as exc:
                # The connection went with its backend; the client reconnects
                # (nginx picks a live backend) and sends the request again. A
                # connection made while the backend is dying can go the same way.
                resent.append(f"{type(exc).__name__}: {exc}")
        return raw.send("/whoami", payload)

    def client(requests: int, worker: int) -> None:
        with RawDataClient(nginx.tcp_port, timeout=30) as raw:
            for i in range(requests):
                try:
                    body = send(raw, {"worker": worker, "i": i})
                except TransportError as exc:
                    load.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                assert body["payload"] == {"worker": worker, "i": i}
                load.answered(body["pid"])

    load.run(client)
    seen = load.seen
    # nginx spread the clients' connections over both backends.
    assert seen[pid_a] > 0 and seen[pid_b] > 0, seen
    # only around the kill: a few per client at most
    assert len(resent) <= CLIENTS * (TRIES - 1), resent
    # the kill did hit: nginx saw the backend go (reset, then refused)
    assert re.search(r"Connection refused|reset by peer", nginx.log())

    # New connections reach the restarted backend once nginx tries it again.
    pid_a2 = load.restarted[0].pid
    deadline = time.monotonic() + 20
    while seen[pid_a2] < 3 and time.monotonic() < deadline:
        with RawDataClient(nginx.tcp_port, timeout=30) as raw:
            seen[raw.send("/whoami", None)["pid"]] += 1
    assert seen[pid_a2] >= 3, seen

    # Each live backend's metrics (the native listener records through the
    # same API as HTTP) count exactly the answers it gave.
    for backend, pid in ((b, pid_b), (load.restarted[0], pid_a2)):
        samples = scrape(backend.server.url)
        answered = metric(
            samples,
            "dataserve_requests_total",
            transport="native",
            resource="/whoami",
            status="200",
        )
        assert answered == seen[pid], (pid, answered, seen)
