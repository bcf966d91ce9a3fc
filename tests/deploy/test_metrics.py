"""Prometheus metrics: requests, latency, bytes, open connections; bounded labels."""

from __future__ import annotations

import socket
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from dataserve import create_app
from dataserve.ops import OTHER, Metrics, transport_metrics
from tests.conftest import ROOT

from .helpers import metric, parse_metrics, scrape, serve_process, wait_until


def samples_of(registry: CollectorRegistry) -> Any:
    return parse_metrics(generate_latest(registry).decode())


def test_resource_labels_are_bounded() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry, max_resource_labels=2)
    http = m.transport("http")
    for path in ["/a", "/b", "/c"]:  # answered, but only two get a label
        http.observe(path, 200, 0.001, 10, 20)
    for i in range(500):  # a client walking arbitrary paths: all "other"
        http.observe(f"/scan/{i}", 404, 0.001, 0, 30)
    http.observe("/a", 500, 0.002, 10, 40)  # a known resource keeps its label
    samples = samples_of(registry)
    resources = {
        dict(labels)["resource"] for (name, labels) in samples if "resource" in dict(labels)
    }
    assert resources == {"/a", "/b", OTHER}
    assert metric(samples, "dataserve_requests_total", resource=OTHER, status="404") == 500
    assert metric(samples, "dataserve_requests_total", resource=OTHER, status="200") == 1
    assert metric(samples, "dataserve_requests_total", resource="/a", status="500") == 1
    assert metric(samples, "dataserve_request_duration_seconds_count", resource="/a") == 2
    assert metric(samples, "dataserve_request_bytes_total", resource="/a") == 20
    assert metric(samples, "dataserve_response_bytes_total", resource="/a") == 60


def test_a_very_long_path_shares_the_other_label() -> None:
    registry = CollectorRegistry()
    http = Metrics(registry).transport("http")
    http.observe("/" + "x" * 300, 200, 0.001, 1, 1)
    assert metric(samples_of(registry), "dataserve_requests_total", resource=OTHER) == 1


def test_the_hook_api_for_raw_listeners_records_under_its_transport(serve: Any) -> None:
    recorder = transport_metrics("test-raw")
    assert transport_metrics("test-raw") is recorder  # one per name
    recorder.connection_opened()
    recorder.connection_opened()
    recorder.connection_closed()
    recorder.observe("/raw-thing", 200, 0.0003, 5, 7)
    recorder.observe("/raw-thing", 404, 0.3, 5, 0)
    server = serve(create_app(lambda resource, payload: None))
    samples = scrape(server.url)
    assert metric(samples, "dataserve_open_connections", transport="test-raw") == 1
    assert metric(samples, "dataserve_connections_total", transport="test-raw") == 2
    assert (
        metric(samples, "dataserve_requests_total", transport="test-raw", resource="/raw-thing")
        == 2
    )
    assert metric(samples, "dataserve_response_bytes_total", transport="test-raw") == 7

    def bucket(le: str) -> float:
        return metric(
            samples,
            "dataserve_request_duration_seconds_bucket",
            transport="test-raw",
            resource="/raw-thing",
            le=le,
        )

    assert (bucket("0.0005"), bucket("0.25"), bucket("0.5")) == (1, 1, 2)


def test_http_requests_are_counted_by_resource_and_status_with_bytes_and_latency() -> None:
    server = serve_process("handler:Handler", "--port", "0")
    try:
        with httpx.Client(base_url=server.url) as http:
            for i in range(1, 10):
                assert http.put("/echo", content=b"x" * i).content == b"x" * i
            assert http.put("/echo").status_code == 404  # no body: None, not handled
            assert http.put("/nothing", json=1).status_code == 404
            assert http.get("/echo").status_code == 405
            r = http.put("/echo", content=b"[", headers={"content-type": "application/json"})
            assert r.status_code == 400
        samples = scrape(server.url)
    finally:
        server.stop()

    def requests(**labels: str) -> float:
        return metric(samples, "dataserve_requests_total", transport="http", **labels)

    assert requests(resource="/echo", status="200") == 9
    assert requests(resource="/echo", status="404") == 1
    assert requests(resource=OTHER, status="404") == 1  # never answered: no label of its own
    assert requests(resource="/echo", status="405") == 1
    assert requests(resource="/echo", status="400") == 1
    assert metric(samples, "dataserve_request_bytes_total", resource="/echo") == sum(range(10)) + 1
    assert metric(samples, "dataserve_response_bytes_total", resource="/echo") >= sum(range(10))
    assert metric(samples, "dataserve_request_duration_seconds_count", resource="/echo") == 12
    assert metric(samples, "dataserve_request_duration_seconds_sum", resource="/echo") > 0


def test_open_connections_count_up_and_down() -> None:
    server = serve_process("handler:Handler", "--port", "0")
    held: list[socket.socket] = []
    try:

        def open_now() -> float:
            return metric(scrape(server.url), "dataserve_open_connections", transport="http")

        # only the scrape's own connection
        assert wait_until(lambda: open_now() == 1)
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            # a request answered proves the server has the connection
            sock.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            held.append(sock)
        assert open_now() == 4
        for sock in held:
            sock.close()
        assert wait_until(lambda: open_now() == 1)
        samples = scrape(server.url)
        assert metric(samples, "dataserve_connections_total", transport="http") >= 4
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_the_cap_on_resource_labels_is_a_flag() -> None:
    server = serve_process(
        "tests.deploy.handlers:Probe", "--port", "0", "--metrics-max-resources", "3", cwd=ROOT
    )
    try:
        with httpx.Client(base_url=server.url) as http:
            for i in range(40):
                assert http.put(f"/any/{i}", json=i).text == "ok"
        samples = scrape(server.url)
    finally:
        server.stop()
    resources = {
        dict(labels)["resource"] for (name, labels) in samples if name == "dataserve_requests_total"
    }
    assert resources == {"/any/0", "/any/1", "/any/2", OTHER}
    assert metric(samples, "dataserve_requests_total", resource=OTHER) == 37
