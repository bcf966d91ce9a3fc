"""The metrics as plain numbers: ``Totals``, and the tallies they are summed from.

``Tally`` is what one (resource label, status) gathered; ``Adder`` sums
tallies, or (``totals_from_samples``) the samples Prometheus exposes, into
one ``Totals``. No Prometheus object is touched here.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUCKETS", "Adder", "Tally", "Totals", "totals_from_samples"]

# Data requests take from well under a millisecond (inline handlers on
# loopback) to seconds (large bodies): the client's default buckets start at
# 5 ms and would put most requests in the first one.
BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    float("inf"),
)


class Tally:
    """What one (resource label, status) gathered since the last flush, or
    (``children`` None) since the process started."""

    __slots__ = ("buckets", "bytes_in", "bytes_out", "children", "count", "seconds")

    def __init__(self, children: tuple[Any, Any, Any, Any] | None) -> None:
        self.children = children
        self.count = 0
        self.seconds = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.buckets = [0] * len(BUCKETS)

    def add(self, other: Tally) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


@dataclass(frozen=True, slots=True)
class Totals:
    """Requests answered since the start, as plain numbers, at one moment.

    ``buckets[i]`` counts the requests that took at most ``BUCKETS[i]``
    seconds and more than ``BUCKETS[i - 1]`` (not cumulative, unlike
    Prometheus' ``le`` buckets). ``errors`` are the answers with a status of
    400 or more. The breakdowns are empty in ``Metrics.history``.
    """

    #: ``time.monotonic()`` and ``time.time()`` when taken.
    time: float
    wall: float
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    buckets: tuple[int, ...] = (0,) * len(BUCKETS)
    by_status: dict[int, int] = field(default_factory=dict)
    by_resource: dict[str, int] = field(default_factory=dict)
    by_transport: dict[str, int] = field(default_factory=dict)
    #: Connections open now, by transport (not a total: a reading).
    open_connections: dict[str, int] = field(default_factory=dict)


class Adder:
    """Adds up ``Tally``-shaped numbers into one ``Totals``."""

    def __init__(self, breakdown: bool) -> None:
        self.breakdown = breakdown
        self.requests = self.errors = self.bytes_in = self.bytes_out = 0
        self.seconds = 0.0
        self.buckets = [0] * len(BUCKETS)
        self.by_status: dict[int, int] = {}
        self.by_resource: dict[str, int] = {}
        self.by_transport: dict[str, int] = {}

    def count(self, transport: str, resource: str, status: int, n: int) -> None:
        self.requests += n
        if status >= 400:
            self.errors += n
        if self.breakdown:
            self.by_status[status] = self.by_status.get(status, 0) + n
            self.by_resource[resource] = self.by_resource.get(resource, 0) + n
            self.by_transport[transport] = self.by_transport.get(transport, 0) + n

    def totals(self, open_connections: dict[str, int] | None = None) -> Totals:
        return Totals(
            time.monotonic(),
            time.time(),
            self.requests,
            self.errors,
            self.seconds,
            self.bytes_in,
            self.bytes_out,
            tuple(self.buckets),
            self.by_status,
            self.by_resource,
            self.by_transport,
            open_connections or {},
        )


# The metrics' names as the multiprocess collector reports its samples.
_REQUESTS = "dataserve_requests_total"
_BUCKET = "dataserve_request_duration_seconds_bucket"
_SUM = "dataserve_request_duration_seconds_sum"
_RECEIVED = "dataserve_request_bytes_total"
_SENT = "dataserve_response_bytes_total"
_OPEN = "dataserve_open_connections"


def totals_from_samples(samples: Iterable[Any]) -> Totals:
    """``Totals`` from Prometheus samples (``name``, ``labels``, ``value``) of
    the dataserve metrics, their histogram buckets cumulative as exposed."""
    adder = Adder(breakdown=True)
    cumulative: dict[tuple[str, str], list[float]] = {}
    opened: dict[str, int] = {}
    for sample in samples:
        name, labels, value = sample.name, sample.labels, sample.value
        if name == _REQUESTS:
            adder.count(labels["transport"], labels["resource"], int(labels["status"]), int(value))
        elif name == _BUCKET:
            key = (labels["transport"], labels["resource"])
            series = cumulative.setdefault(key, [0.0] * len(BUCKETS))
            series[bisect_left(BUCKETS, float(labels["le"]))] = value
        elif name == _SUM:
            adder.seconds += value
        elif name == _RECEIVED:
            adder.bytes_in += int(value)
        elif name == _SENT:
            adder.bytes_out += int(value)
        elif name == _OPEN:
            opened[labels["transport"]] = opened.get(labels["transport"], 0) + int(value)
    for series in cumulative.values():
        below = 0.0
        for i, up_to in enumerate(series):
            adder.buckets[i] += int(up_to - below)
            below = up_to
    return adder.totals(opened)
