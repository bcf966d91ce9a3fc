"""What ``dataserve serve`` tells the console: listeners, workers; figures of every worker."""

from __future__ import annotations

import collections
import re
from typing import Any

import httpx

from rawproto import RawDataClient
from tests.conftest import ROOT
from tests.deploy.helpers import all_started, finish, serve_process, wait_until

PROBE = "tests.deploy.handlers:Probe"


def stats(url: str) -> Any:
    r = httpx.get(url + "/_dataserve/stats", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_one_process_shows_its_http_and_native_listeners() -> None:
    server = serve_process(PROBE, "--port", "0", "--tcp-port", "0", cwd=ROOT)
    try:
        tcp = re.search(r"tcp://127\.0\.0\.1:(\d+)", server.line(1))
        assert tcp, server.lines
        info = stats(server.url)["server"]
        assert info["workers"] == 1
        assert info["listeners"] == [
            {"transport": "http", "address": server.url},
            {"transport": "native", "address": tcp.group(0)},
        ]
        assert info["handler"] == {
            "name": "Probe", "module": "tests.deploy.handlers", "kind": "class",
        }  # fmt: skip
        with RawDataClient(int(tcp.group(1)), timeout=30) as raw:
            assert raw.send("/echo", [1]) == [1]
            after = stats(server.url)  # the raw connection is still open
        assert after["by_transport"]["native"] == 1
        assert after["connections"]["native"] == 1
        assert after["by_resource"]["/echo"] == 1
    finally:
        status, _, err = finish(server)
    assert status == 0, err


def test_workers_are_counted_and_their_figures_added_up() -> None:
    server = serve_process(PROBE, "--port", "0", "--workers", "2", "--tcp-port", "0", cwd=ROOT)
    try:
        tcp = re.search(r"tcp://127\.0\.0\.1:\d+", server.line(1))
        assert tcp, server.lines
        assert all_started(server, 2)
        seen: collections.Counter[int] = collections.Counter()
        while len(seen) < 2 and sum(seen.values()) < 600:
            with httpx.Client() as http:  # a new connection: either worker may take it
                seen[http.put(f"{server.url}/pid", json=None).json()] += 1
        assert len(seen) == 2, seen
        sent = sum(seen.values())
        # The other worker's tallies reach the shared files within half a second.
        assert wait_until(lambda: stats(server.url)["by_resource"].get("/pid") == sent)
        answered_by = set()
        for _ in range(6):  # whichever worker answers, the same sums
            s = stats(server.url)
            answered_by.add(s["server"]["pid"])
            assert s["by_resource"]["/pid"] == sent
            assert s["server"]["workers"] == 2
            assert s["server"]["listeners"] == [
                {"transport": "http", "address": server.url},
                {"transport": "native", "address": tcp.group(0)},
            ]
        assert answered_by <= set(seen)
    finally:
        status, _, err = finish(server)
    assert status == 0, err


def test_no_console_flag() -> None:
    server = serve_process(PROBE, "--port", "0", "--no-console", cwd=ROOT)
    try:
        r = httpx.get(server.url + "/", follow_redirects=False)
        assert r.status_code == 405 and "console" not in r.text
        assert httpx.get(server.url + "/_dataserve/").status_code == 404
        assert httpx.get(server.url + "/_dataserve/health").status_code == 200
    finally:
        status, _, err = finish(server)
    assert status == 0, err
