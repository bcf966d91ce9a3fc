"""dataserve.core.metrics.recorder: one transport's requests tallied, then flushed.

A ``Metrics`` on a private Prometheus registry owns the recorder; its flusher
thread is never started (``flushing`` is set), so a test flushes by hand.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from dataserve.core.metrics.recorder import TransportMetrics
from dataserve.core.metrics.registry import OTHER, Metrics
from dataserve.core.metrics.totals import BUCKETS, Adder


def owner() -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    m = Metrics(registry, max_resource_labels=2)
    m.flushing = True  # no flusher thread: the test flushes
    return m, registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_connections_count_accepted_and_open() -> None:
    m, registry = owner()
    rec = TransportMetrics(m, "native")
    rec.connection_opened()
    rec.connection_opened()
    rec.connection_closed()
    assert value(registry, "dataserve_connections_total", transport="native") == 2
    assert value(registry, "dataserve_open_connections", transport="native") == 1


def test_observations_reach_prometheus_only_when_flushed() -> None:
    m, registry = owner()
    rec = TransportMetrics(m, "http")
    rec.observe("/a", 200, 0.003, 10, 20)
    rec.observe("/a", 200, 0.0004, 1, 2)
    labels = {"transport": "http", "resource": "/a"}
    assert not value(registry, "dataserve_requests_total", status="200", **labels)  # 0 or unset
    rec.flush()
    assert value(registry, "dataserve_requests_total", status="200", **labels) == 2
    assert value(registry, "dataserve_request_bytes_total", **labels) == 11
    assert value(registry, "dataserve_response_bytes_total", **labels) == 22
    seconds = value(registry, "dataserve_request_duration_seconds_sum", **labels)
    assert seconds == pytest.approx(0.0034)
    assert value(registry, "dataserve_request_duration_seconds_bucket", le="0.0005", **labels) == 1
    assert value(registry, "dataserve_request_duration_seconds_bucket", le="0.005", **labels) == 2
    rec.flush()  # nothing new: nothing added twice
    assert value(registry, "dataserve_requests_total", status="200", **labels) == 2


def test_a_duration_on_a_bucket_bound_is_in_that_bucket() -> None:
    m, _ = owner()
    rec = TransportMetrics(m, "http")
    rec.observe("/a", 200, BUCKETS[2], 0, 0)
    rec.flush()
    adder = Adder(False)
    rec.add_to(adder)
    assert adder.buckets[2] == 1


def test_resources_beyond_the_label_cap_are_other() -> None:
    m, _ = owner()
    rec = TransportMetrics(m, "http")
    for resource, status in (("/a", 200), ("/b", 200), ("/c", 200), ("/nope", 404)):
        rec.observe(resource, status, 0.001, 0, 0)
    rec.flush()
    adder = Adder(True)
    rec.add_to(adder)
    assert adder.by_resource == {"/a": 1, "/b": 1, OTHER: 2}
    assert adder.by_status == {200: 3, 404: 1}


def test_add_to_sums_everything_flushed_so_far() -> None:
    m, _ = owner()
    rec = TransportMetrics(m, "tcpy")
    rec.observe("/a", 200, 0.5, 3, 4)
    rec.flush()
    rec.observe("/a", 500, 0.5, 3, 4)
    rec.flush()
    rec.observe("/a", 200, 0.5, 3, 4)  # not flushed yet: not in the totals
    adder = Adder(True)
    rec.add_to(adder)
    assert (adder.requests, adder.errors, adder.bytes_in, adder.bytes_out) == (2, 1, 6, 8)
    assert adder.seconds == 1.0 and adder.by_transport == {"tcpy": 2}


def test_the_first_observation_starts_the_owners_flusher() -> None:
    class Owner:
        flushing = False
        started = 0

        def __init__(self, m: Metrics) -> None:
            self.open_connections, self.connections = m.open_connections, m.connections
            self._m = m

        def start_flushing(self) -> None:
            self.started += 1
            self.flushing = True

        def resource_label(self, resource: str, status: int) -> str:
            return resource

        def children(self, transport: str, resource: str, status: int) -> tuple[object, ...]:
            return self._m.children(transport, resource, status)

    m, _ = owner()
    o = Owner(m)
    rec = TransportMetrics(o, "http")  # type: ignore[arg-type]
    rec.observe("/a", 200, 0.1, 0, 0)
    rec.observe("/a", 200, 0.1, 0, 0)
    assert o.started == 1
    rec.forked()  # a fresh lock: the recorder still works
    rec.observe("/a", 200, 0.1, 0, 0)
    rec.flush()
