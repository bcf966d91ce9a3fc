"""`dataserve serve` as deployed: workers sharing metrics, draining, one-line errors."""

from __future__ import annotations

import collections
import glob
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from dataserve.http.server import bind_socket
from rawproto import RawDataClient
from tests.conftest import ROOT

from .helpers import DATASERVE, all_started, finish, metric, scrape, serve_process, wait_until

PROBE = "tests.deploy.handlers:Probe"


def pids_from(url: str, connections: int) -> collections.Counter[int]:
    seen: collections.Counter[int] = collections.Counter()
    for _ in range(connections):
        with httpx.Client() as http:  # a new connection each time: any worker may take it
            seen[http.put(f"{url}/pid", json=None).json()] += 1
    return seen


@pytest.mark.slow
def test_workers_add_up_their_metrics_whichever_answers_the_scrape(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server = serve_process(
        PROBE, "--port", "0", "--workers", "2", cwd=ROOT, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    )
    try:
        seen = pids_from(server.url, 60)
        while len(seen) < 2 and sum(seen.values()) < 600:
            seen += pids_from(server.url, 20)
        assert len(seen) == 2, seen
        total = sum(seen.values())
        # Each worker adds its tallies to the shared files every FLUSH_INTERVAL.
        assert wait_until(
            lambda: metric(scrape(server.url), "dataserve_requests_total", resource="/pid") == total
        )
        # Each scrape is a new connection, so different workers answer them.
        for _ in range(10):
            with httpx.Client() as http:
                r = http.get(f"{server.url}/_dataserve/metrics")
            samples = scrape(server.url)
            assert metric(samples, "dataserve_requests_total", resource="/pid") == total
            assert metric(samples, "dataserve_open_connections", transport="http") == 1
            assert r.status_code == 200
        # Both workers wrote their own values: multiprocess mode at work.
        files = {Path(f).name for f in glob.glob(str(metrics_dir / "counter_*.db"))}
        assert {f"counter_{pid}.db" for pid in seen} <= files
    finally:
        status, _, err = finish(server)
    assert status == 0, err
    assert metrics_dir.exists()  # the user's directory is left to the user


@pytest.mark.slow
def test_workers_serve_the_native_port_too_and_count_it_in_the_same_metrics() -> None:
    server = serve_process(PROBE, "--port", "0", "--workers", "2", "--tcp-port", "0", cwd=ROOT)
    try:
        tcp = re.search(r"tcp://127\.0\.0\.1:(\d+)", server.line(1))
        assert tcp, server.lines
        assert all_started(server, 2)
        seen: collections.Counter[int] = collections.Counter()
        while len(seen) < 2 and sum(seen.values()) < 600:
            with RawDataClient(int(tcp.group(1)), timeout=30) as raw:  # a new connection
                seen[raw.send("/pid")] += 1
        assert len(seen) == 2, seen  # SO_REUSEPORT spread them over both workers

        def native_total() -> float:
            samples = scrape(server.url)
            return metric(samples, "dataserve_requests_total", transport="native", resource="/pid")

        assert wait_until(lambda: native_total() == sum(seen.values()))  # both have flushed
        for _ in range(5):  # whichever worker answers the scrape
            samples = scrape(server.url)
            total = metric(samples, "dataserve_requests_total", transport="native", resource="/pid")
            assert total == sum(seen.values())
    finally:
        status, _, err = finish(server)
    assert status == 0, err


def test_workers_get_a_private_metrics_directory_removed_at_exit() -> None:
    server = serve_process(PROBE, "--port", "0", "--workers", "2", cwd=ROOT)
    try:
        pid = next(iter(pids_from(server.url, 1)))
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        found = [v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
        assert found, "the worker runs without multiprocess metrics"
        path = found[0].split(b"=", 1)[1].decode()
        assert os.path.isdir(path)
    finally:
        status, _, err = finish(server)
    assert status == 0, err
    assert not os.path.exists(path)


@pytest.mark.slow
def test_sigterm_lets_in_flight_requests_finish_in_all_workers(tmp_path: Path) -> None:
    server = serve_process(
        PROBE, "--port", "0", "--workers", "2", "--handler-threads", "4", cwd=ROOT
    )
    workers = psutil.Process(server.proc.pid).children(recursive=True)
    fifos = [tmp_path / f"started-{i}" for i in range(4)]
    for fifo in fifos:
        os.mkfifo(fifo)
    results: list[tuple[int, str]] = []
    started: list[str] = []

    def slow(fifo: Path) -> None:
        with httpx.Client(timeout=60) as http:
            r = http.put(f"{server.url}/slow", json={"seconds": 1.5, "fifo": str(fifo)})
            results.append((r.status_code, r.text))

    def wait_started(fifo: Path) -> None:
        started.append(fifo.read_text())  # returns once that request is in its handler

    requests = [threading.Thread(target=slow, args=(fifo,)) for fifo in fifos]
    readers = [threading.Thread(target=wait_started, args=(fifo,), daemon=True) for fifo in fifos]
    for thread in [*readers, *requests]:
        thread.start()
    for thread in readers:
        thread.join(30)
    assert started == ["started"] * 4
    server.proc.send_signal(signal.SIGTERM)
    for thread in requests:
        thread.join(60)
    assert results == [(200, "done")] * 4
    assert server.proc.wait(60) == 0
    # Every process it started is gone too (multiprocessing's resource
    # tracker leaves once it sees the parent gone: waited for, not polled).
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


@pytest.mark.slow
def test_ready_turns_503_on_sigterm_while_the_drain_delay_keeps_serving() -> None:
    server = serve_process("handler:Handler", "--port", "0", "--drain-delay", "3")
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/_dataserve/ready").status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: http.get("/_dataserve/ready").status_code == 503, timeout=10)
        assert http.get("/_dataserve/ready").text == "draining\n"
        assert http.get("/_dataserve/health").status_code == 200
        assert http.put("/echo", json=["still serving"]).json() == ["still serving"]
    # a new connection during the delay is still accepted
    assert httpx.put(server.url + "/echo", json=1).json() == 1
    # after the delay it stops by itself, as after a plain SIGTERM
    assert server.proc.wait(30) == 0
    _, _, err = finish(server)
    assert "Shutting down" in err


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DATASERVE, "serve", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "tests.deploy.broken_handler:Handler",
            "importing module 'tests.deploy.broken_handler' raised RuntimeError: "
            "the database is not configured",
        ),
        ("tests.deploy.handlers:NoHandleRequest", "is a class without a handle_request method"),
        ("tests.deploy.handlers:one_argument", "cannot be called as fn(resource, payload)"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_handler_that_cannot_serve_is_one_line_not_a_traceback(
    spec: str, message: str, workers: str
) -> None:
    out = run(spec, "--port", "0", "--workers", workers)
    assert out.returncode == 2
    assert out.stderr == f"dataserve: error: {spec} {message}\n" or (
        out.stderr.startswith("dataserve: error: ") and message in out.stderr
    ), out.stderr
    assert len(out.stderr.splitlines()) == 1
    assert out.stdout == ""  # nothing was served


def test_port_in_use_with_workers_is_one_line() -> None:
    with bind_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        out = run(PROBE, "--port", str(port), "--workers", "2")
    assert out.returncode == 1
    assert out.stderr == (
        f"dataserve: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ops-prefix", "/a b"], "argument --ops-prefix: ops prefix must be a path like"),
        (["--metrics-max-resources", "-1"], "argument --metrics-max-resources: must be 0 or more"),
        (["--drain-delay", "-2"], "argument --drain-delay: must be 0 or more"),
    ],
)
def test_bad_operations_flags_are_one_line(flags: list[str], message: str) -> None:
    out = run(PROBE, "--port", "0", *flags)
    assert out.returncode == 2
    assert out.stderr.startswith("dataserve: error: ") and message in out.stderr
    assert len(out.stderr.splitlines()) == 1


def test_the_handler_can_come_from_the_environment() -> None:
    server = serve_process("--port", "0", cwd=ROOT, DATASERVE_HANDLER=PROBE)
    try:
        assert PROBE in server.lines[0]
        assert httpx.put(server.url + "/echo", json=[1]).json() == [1]
    finally:
        assert server.stop() == 0
