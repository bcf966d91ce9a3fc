"""Scale out with no Docker engine: real `dataserve serve` replicas behind a real
nginx configured from the template compose.yaml uses.

2,000 PUT requests through nginx spread over two backends; one backend is
killed (SIGKILL) in the middle of the load and restarted on its port: no
request fails, because nginx sends a PUT whose backend refused or dropped the
connection to the other one. Each backend's own metrics agree with what the
clients saw.
"""

from __future__ import annotations

import collections
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess

from .helpers import Nginx, metric, scrape, serve_process

TOTAL = 2000
CLIENTS = 8
KILL_AFTER = 500


@pytest.fixture
def backends() -> Iterator[list[ServerProcess]]:
    started = [serve_process("handler:Handler", "--port", "0") for _ in range(2)]
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def cleanup() -> Iterator[list[ServerProcess | Nginx]]:
    things: list[ServerProcess | Nginx] = []
    yield things
    for thing in things:
        thing.stop()


def test_put_load_spreads_over_both_backends_and_survives_a_killed_backend(
    tmp_path: Path, backends: list[ServerProcess], cleanup: list[ServerProcess | Nginx]
) -> None:
    a, b = backends
    nginx = Nginx(tmp_path, [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"])
    cleanup.append(nginx)

    pid_a, pid_b = a.proc.pid, b.proc.pid
    restarted: list[ServerProcess] = []
    done = 0
    done_lock = threading.Lock()
    kill_now = threading.Event()
    failures: list[str] = []
    seen: collections.Counter[int] = collections.Counter()

    def client(requests: int, worker: int) -> None:
        nonlocal done
        with httpx.Client(base_url=nginx.url, timeout=30) as http:
            for i in range(requests):
                try:
                    r = http.put("/whoami", json={"worker": worker, "i": i})
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                    continue
                body = r.json()
                assert body["payload"] == {"worker": worker, "i": i}
                with done_lock:
                    seen[body["pid"]] += 1
                    done += 1
                    if done == KILL_AFTER:
                        kill_now.set()

    def kill_and_restart() -> None:
        assert kill_now.wait(120), "the load never got going"
        a.proc.send_signal(signal.SIGKILL)  # no goodbye: in-flight requests are cut
        a.proc.wait(30)
        # Back on the same port, where nginx's configuration points.
        restarted.append(serve_process("handler:Handler", "--port", str(a.port)))
        cleanup.append(restarted[0])

    killer = threading.Thread(target=kill_and_restart)
    killer.start()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client, TOTAL // CLIENTS, w) for w in range(CLIENTS)]:
            future.result()
    killer.join(60)
    assert not killer.is_alive()

    assert failures == [], f"{len(failures)} failed, e.g. {failures[:3]}\n{nginx.log()[-2000:]}"
    assert done == TOTAL
    # Both backends took a share before the kill (round robin).
    assert seen[pid_a] > KILL_AFTER // 10 and seen[pid_b] > KILL_AFTER // 10, seen

    # The restarted backend is back in rotation once nginx retries it
    # (fail_timeout=1s): keep sending until it answers, a bounded number of times.
    pid_a2 = restarted[0].proc.pid
    with httpx.Client(base_url=nginx.url, timeout=30) as http:
        for i in range(5000):
            r = http.put("/whoami", json={"after": i})
            assert r.status_code == 200, r.text
            seen[r.json()["pid"]] += 1
            if seen[pid_a2] >= 5:
                break
    assert seen[pid_a2] >= 5, seen

    # Each live backend's own metrics count exactly the answers it gave.
    for server, pid in ((b, pid_b), (restarted[0], pid_a2)):
        samples = scrape(server.url)
        answered = metric(
            samples, "dataserve_requests_total", transport="http", resource="/whoami", status="200"
        )
        assert answered == seen[pid], (pid, answered, seen)
