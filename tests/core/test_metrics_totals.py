"""dataserve.core.metrics.totals: tallies and totals as plain numbers, no Prometheus object."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from dataserve.core.metrics.totals import BUCKETS, Adder, Tally, Totals, totals_from_samples


def sample(name: str, value: float, **labels: str) -> Any:
    return SimpleNamespace(name=name, labels=labels, value=value)


def test_buckets_rise_and_end_at_infinity() -> None:
    assert list(BUCKETS) == sorted(BUCKETS) and BUCKETS[-1] == float("inf")
    assert BUCKETS[0] < 0.005  # finer than the client's default first bucket


def test_a_tally_adds_another() -> None:
    a, b = Tally(None), Tally(None)
    a.count, a.seconds, a.bytes_in, a.bytes_out = 1, 0.5, 10, 20
    a.buckets[0] = 1
    b.count, b.seconds, b.bytes_in, b.bytes_out = 2, 1.0, 1, 2
    b.buckets[0], b.buckets[3] = 1, 1
    a.add(b)
    assert (a.count, a.seconds, a.bytes_in, a.bytes_out) == (3, 1.5, 11, 22)
    assert a.buckets[0] == 2 and a.buckets[3] == 1 and sum(a.buckets) == 3
    assert b.count == 2  # the other is unchanged


def test_the_adder_counts_errors_and_the_breakdown_only_when_asked() -> None:
    with_breakdown, without = Adder(True), Adder(False)
    for adder in (with_breakdown, without):
        adder.count("http", "/a", 200, 3)
        adder.count("native", "/a", 404, 1)
        adder.count("http", "other", 500, 2)
    before = time.monotonic()
    t = with_breakdown.totals({"http": 4})
    assert isinstance(t, Totals) and before <= t.time <= time.monotonic()
    assert (t.requests, t.errors) == (6, 3)
    assert t.by_status == {200: 3, 404: 1, 500: 2}
    assert t.by_resource == {"/a": 4, "other": 2}
    assert t.by_transport == {"http": 5, "native": 1}
    assert t.open_connections == {"http": 4}
    bare = without.totals()
    assert (bare.requests, bare.errors) == (6, 3)
    assert bare.by_status == bare.by_resource == bare.by_transport == bare.open_connections == {}


def test_totals_start_at_zero() -> None:
    t = Totals(1.0, 2.0)
    assert (t.requests, t.errors, t.seconds, t.bytes_in, t.bytes_out) == (0, 0, 0.0, 0, 0)
    assert t.buckets == (0,) * len(BUCKETS)


def test_totals_from_samples_turn_cumulative_buckets_into_counts() -> None:
    le = [str(b) if b != float("inf") else "+Inf" for b in BUCKETS]
    cumulative = [0.0] * len(BUCKETS)
    cumulative[0:] = [1.0] * len(BUCKETS)  # one request in the first bucket
    for i in range(3, len(BUCKETS)):
        cumulative[i] += 2  # two more in the fourth
    samples = [
        sample("dataserve_requests_total", 3, transport="http", resource="/x", status="200"),
        sample("dataserve_requests_total", 1, transport="pyts", resource="other", status="500"),
        sample("dataserve_request_duration_seconds_sum", 0.75, transport="http", resource="/x"),
        sample("dataserve_request_bytes_total", 100, transport="http", resource="/x"),
        sample("dataserve_response_bytes_total", 250, transport="http", resource="/x"),
        sample("dataserve_open_connections", 2, transport="http"),
        sample("dataserve_open_connections", 1, transport="http"),
        sample("something_else", 99),
    ] + [
        sample(
            "dataserve_request_duration_seconds_bucket", c, transport="http", resource="/x", le=b
        )
        for b, c in zip(le, cumulative, strict=True)
    ]
    t = totals_from_samples(samples)
    assert (t.requests, t.errors, t.seconds, t.bytes_in, t.bytes_out) == (4, 1, 0.75, 100, 250)
    assert t.buckets[0] == 1 and t.buckets[3] == 2 and sum(t.buckets) == 3
    assert t.by_transport == {"http": 3, "pyts": 1}
    assert t.open_connections == {"http": 3}  # summed over workers


def test_no_samples_no_totals() -> None:
    t = totals_from_samples([])
    assert t.requests == 0 and t.buckets == (0,) * len(BUCKETS) and t.open_connections == {}
