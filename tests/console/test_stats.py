"""The console's live figures: rates, percentiles and the chart's points from totals."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from dataserve.core.dispatch import HandlerPool
from dataserve.core.metrics import BUCKETS, Totals
from dataserve.ops.config import OpsConfig
from dataserve.ops.observe import observer_for
from dataserve.ops.stats import STUCK_AFTER, WINDOW, Stats, quantile

N = len(BUCKETS)


def buckets(**counts: int) -> tuple[int, ...]:
    """``buckets(b0=3, b5=1)``: counts per bucket index."""
    out = [0] * N
    for name, n in counts.items():
        out[int(name[1:])] = n
    return tuple(out)


def test_quantiles_interpolate_within_a_bucket_like_prometheus() -> None:
    assert quantile(0.5, buckets()) is None  # no requests, no latency
    # Two requests at most 0.5 ms: the median is taken halfway up the bucket.
    assert quantile(0.5, buckets(b0=2)) == pytest.approx(BUCKETS[0] / 2)
    # 99 fast ones and one in (1 ms, 2.5 ms]: p99 still in the first bucket,
    # p100 at the top of the slow one.
    mixed = buckets(b0=99, b2=1)
    assert quantile(0.99, mixed) == pytest.approx(BUCKETS[0])
    assert quantile(1.0, mixed) == pytest.approx(BUCKETS[2])
    assert quantile(0.5, buckets(b1=4)) == pytest.approx((BUCKETS[0] + BUCKETS[1]) / 2)
    # Beyond the largest bound only that bound is known.
    assert quantile(0.99, buckets(b15=5)) == BUCKETS[-2]


def totals(at: float, requests: int, errors: int = 0, fast: int = 0, slow: int = 0) -> Totals:
    return Totals(
        time=at, wall=1_000_000.0 + at, requests=requests, errors=errors,
        buckets=buckets(b0=fast, b9=slow),
    )  # fmt: skip


def stats(**kwargs: Any) -> Stats:
    return Stats(pool=HandlerPool(2), threads=2, **{"observer": None, **kwargs})


def test_rates_and_percentiles_cover_the_last_window() -> None:
    s = stats(metrics_on=True)
    t0 = time.monotonic()
    # One entry a second; 10 fast requests a second, then a slow second.
    history = [totals(t0 + i, 10 * i, fast=10 * i) for i in range(6)]
    now = totals(t0 + 7, 60 + 4, errors=4, fast=60, slow=4)
    figures = s.figures((now, history))
    # From the newest entry at least WINDOW old (t0 + 2) to now: 5 s.
    assert WINDOW == 5.0
    assert figures["requests"] == 64 and figures["errors"] == 4
    assert figures["requests_per_second"] == pytest.approx((64 - 20) / 5)
    assert figures["errors_per_second"] == pytest.approx(4 / 5)
    assert figures["latency"]["p50"] == pytest.approx(BUCKETS[0] * (22 / 40), abs=1e-6)
    assert BUCKETS[8] < figures["latency"]["p99"] <= BUCKETS[9]
    # The chart: one point per pair of entries, each a second's rates.
    points = figures["history"]
    assert [p["rps"] for p in points] == [10.0] * 5
    assert [p["t"] for p in points] == [round(1_000_000.0 + t0 + i, 3) for i in range(1, 6)]
    assert all(p["p50"] == pytest.approx(BUCKETS[0] / 2) for p in points)
    # ?since=T: only the points after T.
    later = s.figures((now, history), since=points[2]["t"])["history"]
    assert later == points[3:]


def test_a_young_history_rates_from_the_origin() -> None:
    s = stats(metrics_on=True)
    o = s.origin  # the process's totals when the app was made

    def fast(n: int) -> tuple[int, ...]:  # n more requests in the first bucket
        return (o.buckets[0] + n, *o.buckets[1:])

    entry = dataclasses.replace(o, time=o.time + 1, requests=o.requests + 4, buckets=fast(4))
    now = dataclasses.replace(o, time=o.time + 2, requests=o.requests + 8, buckets=fast(8))
    figures = s.figures((now, [entry]))
    # Nothing is a window old yet: from the origin, 8 requests in 2 s.
    assert figures["requests_per_second"] == pytest.approx(4.0)
    assert figures["latency"]["p50"] == pytest.approx(BUCKETS[0] / 2)
    assert figures["history"] == []  # one entry makes no point yet


def test_without_metrics_the_request_figures_are_null() -> None:
    figures = stats(metrics_on=False).figures(None)
    assert figures["requests"] is None and figures["latency"] is None
    assert figures["by_resource"] is None and figures["history"] == []
    assert figures["handler_threads"] == {"limit": 2, "busy": 0, "queued": 0}


def test_requests_in_flight_and_stuck_ones() -> None:
    observer = observer_for(OpsConfig(request_id=False, metrics=False))
    assert observer is not None and observer.in_flight is not None
    s = stats(metrics_on=False, observer=observer)
    scope: dict[str, Any] = {"headers": []}
    first = observer.begin(scope)
    second = observer.begin(scope)
    first.start -= STUCK_AFTER + 1  # began 11 s ago
    in_flight = s.figures(None)["in_flight"]
    assert in_flight["requests"] == 2 and in_flight["stuck"] == 1
    assert in_flight["oldest"] == pytest.approx(STUCK_AFTER + 1, abs=0.5)
    observer.end(scope, "/x", first, 200, 0, 0)
    observer.end(scope, "/x", second, 200, 0, 0)
    assert s.figures(None)["in_flight"] == {
        "requests": 0, "oldest": 0.0, "stuck": 0, "stuck_after": STUCK_AFTER,
    }  # fmt: skip


def test_in_flight_is_kept_only_with_the_console_on() -> None:
    for ops in (OpsConfig(console=False), OpsConfig(prefix="")):
        observer = observer_for(ops)
        assert observer is not None and observer.in_flight is None
    assert observer_for(OpsConfig(console=False, request_id=False, metrics=False)) is None
