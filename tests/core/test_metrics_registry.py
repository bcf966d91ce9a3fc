"""dataserve.core.metrics.registry: ``Metrics``, its Prometheus metrics, totals and history.

Each test uses a ``Metrics`` on a private registry (the process's own,
``metrics()``, is only looked at, never changed), with ``flushing`` set so
that no flusher thread starts: ``tick()`` is what that thread would call.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from dataserve.core.metrics import registry as reg
from dataserve.core.metrics.registry import HISTORY_LENGTH, OTHER, Metrics


def quiet(max_resource_labels: int = 100) -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    m = Metrics(registry, max_resource_labels=max_resource_labels)
    m.flushing = True
    return m, registry


def test_one_recorder_per_transport() -> None:
    m, _ = quiet()
    assert m.transport("http") is m.transport("http")
    assert m.transport("http") is not m.transport("native")


def test_resource_labels_only_for_answered_resources_up_to_the_cap() -> None:
    m, _ = quiet(max_resource_labels=2)
    assert m.resource_label("/nope", 404) == OTHER  # not answered: never a label
    assert m.resource_label("/a", 200) == "/a"
    assert m.resource_label("/a", 500) == "/a"  # known now, whatever its status
    assert m.resource_label("/" + "x" * 300, 200) == OTHER  # too long to chart
    assert m.resource_label("/b", 200) == "/b"
    assert m.resource_label("/c", 200) == OTHER  # over the cap


def test_collecting_the_registry_flushes_the_tallies_first() -> None:
    m, registry = quiet()
    m.transport("http").observe("/a", 200, 0.01, 1, 1)
    text = generate_latest(registry).decode()
    assert 'dataserve_requests_total{resource="/a",status="200",transport="http"} 1.0' in text


def test_totals_flush_and_add_up_every_transport() -> None:
    m, _ = quiet()
    m.transport("http").connection_opened()
    m.transport("http").observe("/a", 200, 0.01, 5, 6)
    m.transport("native").observe("/a", 404, 0.02, 1, 1)
    t = m.totals()
    assert (t.requests, t.errors, t.bytes_in, t.bytes_out) == (2, 1, 6, 7)
    assert t.by_transport == {"http": 1, "native": 1}
    assert t.open_connections == {"http": 1, "native": 0}
    bare = m.totals(breakdown=False)
    assert bare.requests == 2 and bare.open_connections == {} and bare.by_status == {}


def test_tick_adds_to_history_at_most_once_a_history_interval() -> None:
    m, _ = quiet()
    m.transport("http").observe("/a", 200, 0.01, 0, 0)
    m.tick()
    m.tick()  # too soon after the first
    assert len(m.history) == 1 and m.history[0].requests == 1
    assert m.history.maxlen == HISTORY_LENGTH


def test_forked_stops_claiming_a_flusher() -> None:
    m, _ = quiet()
    m.transport("http")
    m._forked()
    assert m.flushing is False


def test_the_process_metrics_are_one_instance() -> None:
    first = reg.metrics()
    assert reg.metrics() is first and reg.current() is first
    assert reg.transport_metrics("http") is first.transport("http")
    cap = first.max_resource_labels
    try:
        assert reg.metrics(max_resource_labels=7).max_resource_labels == 7
    finally:
        first.max_resource_labels = cap
