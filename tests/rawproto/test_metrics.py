"""The native listener's Prometheus metrics (``metrics=True``): requests by resource
and status, latency, payload bytes, connections."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from rawproto import HandlerError, NotHandled, RawDataClient

from .conftest import connections, make_router, wait_closed


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"transport": "native", **labels}) or 0.0


def test_native_requests_are_counted_when_metrics_are_on(raw_server: Any) -> None:
    router, _ = make_router()
    server = raw_server(router, metrics=True)
    before = {
        "ok": sample("dataserve_requests_total", resource="/echo", status="200"),
        "missing": sample("dataserve_requests_total", resource="other", status="404"),
        "raised": sample("dataserve_requests_total", resource="other", status="500"),
        "latency": sample("dataserve_request_duration_seconds_count", resource="/echo"),
        "in": sample("dataserve_request_bytes_total", resource="/echo"),
        "out": sample("dataserve_response_bytes_total", resource="/echo"),
        "accepted": sample("dataserve_connections_total"),
        "open": sample("dataserve_open_connections"),
    }
    with RawDataClient(server.port) as client:
        for _ in range(3):
            assert client.send("/echo", b"12345") == b"12345"
        with pytest.raises(NotHandled):
            client.send("/none", 1)
        with pytest.raises(HandlerError):
            client.send("/boom", 1)
        assert sample("dataserve_open_connections") == before["open"] + 1
    for conn in connections(server):
        wait_closed(conn)
    assert sample("dataserve_requests_total", resource="/echo", status="200") == before["ok"] + 3
    # Resources the handler never answered share one label: clients cannot
    # grow the metrics without end.
    assert (
        sample("dataserve_requests_total", resource="other", status="404") == before["missing"] + 1
    )
    assert (
        sample("dataserve_requests_total", resource="other", status="500") == before["raised"] + 1
    )
    latency = sample("dataserve_request_duration_seconds_count", resource="/echo")
    assert latency == before["latency"] + 3
    assert sample("dataserve_request_bytes_total", resource="/echo") == before["in"] + 15
    assert sample("dataserve_response_bytes_total", resource="/echo") == before["out"] + 15
    assert sample("dataserve_connections_total") == before["accepted"] + 1
    assert sample("dataserve_open_connections") == before["open"]


def test_nothing_is_recorded_when_metrics_are_off(raw_server: Any) -> None:
    router, _ = make_router()
    server = raw_server(router)
    assert server.server.service.metrics is None
    assert server.server.connection_metrics is None
    before = sample("dataserve_requests_total", resource="/echo", status="200")
    with RawDataClient(server.port) as client:
        assert client.send("/echo", "x") == "x"
    assert sample("dataserve_requests_total", resource="/echo", status="200") == before
