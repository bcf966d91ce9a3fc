"""Prometheus metrics for every transport, correct with several worker processes.

One ``Metrics`` per process (``metrics()``), registered in prometheus-client's
default registry, so metrics a handler defines itself are exposed alongside.
Each transport records through a ``TransportMetrics`` (``metrics().transport
("http")``): the HTTP app does, and so can any raw TCP listener.

Several workers: ``dataserve serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR``
to a fresh directory before the workers start, each worker writes its values
there, and whichever worker answers a scrape adds them all up
(prometheus-client's multiprocess mode).

The console's figures (``dataserve.ops.stats``) read the same numbers as plain
``Totals``: ``Metrics.totals()`` in one process, ``shared_totals()`` summed
over the workers. Neither adds work to a request: the running totals grow
when the tallies are flushed, and ``Metrics.history`` keeps one ``Totals`` a
second, taken by the flusher thread.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "BUCKETS",
    "HISTORY_INTERVAL",
    "HISTORY_LENGTH",
    "OTHER",
    "Metrics",
    "Totals",
    "TransportMetrics",
    "exposition",
    "metrics",
    "multiprocess_dir",
    "prepare_multiprocess",
    "process_exiting",
    "shared_totals",
    "totals_from_samples",
    "transport_metrics",
]

ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The resource label for every resource that has no label of its own.
OTHER = "other"

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

#: Seconds between flushes of the request tallies into the Prometheus metrics.
FLUSH_INTERVAL = 0.5

#: Seconds between the entries of ``Metrics.history``, and how many it keeps
#: (five minutes: what a glance at the console's chart covers).
HISTORY_INTERVAL = 1.0
HISTORY_LENGTH = 300

# A longer path is not a name anyone charts; it shares "other".
_MAX_LABEL_LEN = 200


class _Tally:
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

    def add(self, other: _Tally) -> None:
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


class _Adder:
    """Adds up ``_Tally``-shaped numbers into one ``Totals``."""

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


class TransportMetrics:
    """What one transport (``"http"``, ``"native"``, ``"tinyproto"``...) records.

    Call ``connection_opened()``/``connection_closed()`` once per connection
    and ``observe(...)`` once per answered request.

    ``observe`` is on every request's path, and prometheus-client's own
    ``inc``/``observe`` take a lock and look up a value per call (six of them
    per request). So requests are tallied here in plain integers, and
    ``flush()`` adds the tallies to the Prometheus metrics: before every
    scrape this process answers, and every ``FLUSH_INTERVAL`` seconds from a
    background thread (that is how other workers' counts reach the shared
    files in multiprocess mode: at most that much behind).
    """

    def __init__(self, owner: Metrics, transport: str) -> None:
        self._owner = owner
        self.transport = transport
        self._open = owner.open_connections.labels(transport)
        self._accepted = owner.connections.labels(transport)
        self._children: dict[tuple[str, int], tuple[Any, Any, Any, Any]] = {}
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self._lock = threading.Lock()
        # Everything flushed so far, for Metrics.totals(). Its own lock:
        # observe() never waits for a reader of the totals.
        self._totals: dict[tuple[str, int], _Tally] = {}
        self._totals_lock = threading.Lock()

    def connection_opened(self) -> None:
        self._accepted.inc()
        self._open.inc()

    def connection_closed(self) -> None:
        self._open.dec()

    def observe(
        self, resource: str, status: int, duration: float, bytes_in: int, bytes_out: int
    ) -> None:
        """One request to ``resource`` answered with ``status`` (HTTP-like code)
        after ``duration`` seconds, ``bytes_in`` payload bytes received and
        ``bytes_out`` sent."""
        key = (self._owner.resource_label(resource, status), status)
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally(self._children_for(key))
            tally.count += 1
            tally.seconds += duration
            tally.bytes_in += bytes_in
            tally.bytes_out += bytes_out
            tally.buckets[bisect_left(BUCKETS, duration)] += 1  # le: inclusive bound
        if not self._owner.flushing:
            self._owner.start_flushing()

    def _children_for(self, key: tuple[str, int]) -> tuple[Any, Any, Any, Any]:
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._owner.children(self.transport, *key)
        return children

    def flush(self) -> None:
        """Add what was tallied since the last flush to the Prometheus metrics."""
        with self._lock:
            tallies, self._tallies = self._tallies, {}
        if not tallies:
            return
        with self._totals_lock:
            for key, tally in tallies.items():
                total = self._totals.get(key)
                if total is None:
                    total = self._totals[key] = _Tally(None)
                total.add(tally)
        for tally in tallies.values():
            assert tally.children is not None  # a tally since the last flush has them
            requests, latency, received, sent = tally.children
            requests.inc(tally.count)
            # Histogram.observe takes one value; a tally holds many. Its
            # buckets (not cumulative) and sum are what observe adds to.
            latency._sum.inc(tally.seconds)
            for bucket, n in zip(latency._buckets, tally.buckets, strict=True):
                if n:
                    bucket.inc(n)
            if tally.bytes_in:
                received.inc(tally.bytes_in)
            if tally.bytes_out:
                sent.inc(tally.bytes_out)

    def _add_to(self, adder: _Adder) -> None:
        with self._totals_lock:
            for (resource, status), total in self._totals.items():
                adder.count(self.transport, resource, status, total.count)
                adder.seconds += total.seconds
                adder.bytes_in += total.bytes_in
                adder.bytes_out += total.bytes_out
                adder.buckets = [a + b for a, b in zip(adder.buckets, total.buckets, strict=True)]


class Metrics:
    """The process's dataserve metrics (use ``metrics()`` to get it)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, max_resource_labels: int = 100
    ) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        registry = REGISTRY if registry is None else registry
        self.max_resource_labels = max_resource_labels
        self._known: set[str] = set()
        self._transports: dict[str, TransportMetrics] = {}
        self._lock = threading.Lock()
        #: True while this process's flusher thread runs.
        self.flushing = False
        #: ``totals(breakdown=False)`` every ``HISTORY_INTERVAL`` seconds, the
        #: last ``HISTORY_LENGTH`` of them, taken by the flusher thread (so
        #: from the first request on).
        self.history: deque[Totals] = deque(maxlen=HISTORY_LENGTH)
        # Registered first, so a collection flushes the tallies before the
        # metrics below are read, whoever collects the registry.
        registry.register(_FlushOnCollect(self))
        self.requests = Counter(
            "dataserve_requests",
            "Requests answered, by transport, resource and status.",
            ["transport", "resource", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "dataserve_request_duration_seconds",
            "Time from a request's start to the end of its answer.",
            ["transport", "resource"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.received = Counter(
            "dataserve_request_bytes",
            "Request payload bytes received.",
            ["transport", "resource"],
            registry=registry,
        )
        self.sent = Counter(
            "dataserve_response_bytes",
            "Response payload bytes sent.",
            ["transport", "resource"],
            registry=registry,
        )
        self.connections = Counter(
            "dataserve_connections",
            "Connections accepted.",
            ["transport"],
            registry=registry,
        )
        self.open_connections = Gauge(
            "dataserve_open_connections",
            "Connections open now.",
            ["transport"],
            registry=registry,
            multiprocess_mode="livesum",
        )

    def transport(self, name: str) -> TransportMetrics:
        """The recorder for transport ``name`` (one per name, shared)."""
        found = self._transports.get(name)
        if found is None:
            with self._lock:
                found = self._transports.setdefault(name, TransportMetrics(self, name))
        return found

    def flush(self) -> None:
        """Every transport's tallies into the Prometheus metrics, now."""
        for transport in list(self._transports.values()):
            transport.flush()

    def totals(self, breakdown: bool = True) -> Totals:
        """What this process's transports answered until now (its tallies
        flushed first); without ``breakdown``, no per-status, resource,
        transport or connection figures."""
        self.flush()
        return self._sum(breakdown)

    def _sum(self, breakdown: bool) -> Totals:
        adder = _Adder(breakdown)
        for transport in list(self._transports.values()):
            transport._add_to(adder)
        if not breakdown:
            return adder.totals()
        opened = {}
        for family in self.open_connections.collect():
            for sample in family.samples:
                opened[sample.labels["transport"]] = int(sample.value)
        return adder.totals(opened)

    def start_flushing(self) -> None:
        """Start the flusher thread (once per process, on the first request)."""
        with self._lock:
            if self.flushing:
                return
            self.flushing = True
        threading.Thread(
            target=self._flush_every_interval, name="dataserve-metrics", daemon=True
        ).start()

    def _flush_every_interval(self) -> None:
        pid = os.getpid()
        while os.getpid() == pid:
            time.sleep(FLUSH_INTERVAL)
            self.tick()

    def tick(self) -> None:
        """What the flusher thread does every ``FLUSH_INTERVAL``: flush, and
        add to ``history`` once every ``HISTORY_INTERVAL``."""
        self.flush()
        last = self.history[-1].time if self.history else None
        # Half a flush early counts as on time: sleeps overrun a little.
        if last is None or time.monotonic() - last >= HISTORY_INTERVAL - FLUSH_INTERVAL / 2:
            self.history.append(self._sum(breakdown=False))

    def _forked(self) -> None:
        # The flusher thread does not survive a fork; the child starts its own.
        self.flushing = False
        for transport in self._transports.values():
            transport._lock = threading.Lock()

    def resource_label(self, resource: str, status: int) -> str:
        """``resource`` itself once the handler has answered it (status 200),
        up to ``max_resource_labels`` of them; ``"other"`` for the rest.

        Clients choose paths; labelling each would let any client grow the
        metrics (and the memory holding them) without end.
        """
        if resource in self._known:
            return resource
        if (
            status == 200
            and len(self._known) < self.max_resource_labels
            and len(resource) <= _MAX_LABEL_LEN
        ):
            self._known.add(resource)
            return resource
        return OTHER

    def children(self, transport: str, resource: str, status: int) -> tuple[Any, Any, Any, Any]:
        return (
            self.requests.labels(transport, resource, str(status)),
            self.duration.labels(transport, resource),
            self.received.labels(transport, resource),
            self.sent.labels(transport, resource),
        )


class _FlushOnCollect:
    """A collector with no metrics of its own: collecting it flushes the tallies."""

    def __init__(self, owner: Metrics) -> None:
        self._owner = owner

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        self._owner.flush()
        return []


_metrics: Metrics | None = None
_metrics_lock = threading.Lock()


def metrics(max_resource_labels: int | None = None) -> Metrics:
    """The process's ``Metrics``, created on first use.

    ``max_resource_labels`` (when given) sets the cap on resource labels.
    """
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                _metrics = Metrics()
                if hasattr(os, "register_at_fork"):
                    os.register_at_fork(after_in_child=_metrics._forked)
    if max_resource_labels is not None:
        _metrics.max_resource_labels = max_resource_labels
    return _metrics


def transport_metrics(name: str) -> TransportMetrics:
    """The process's metrics recorder for transport ``name`` (``"http"``,
    ``"native"``, ``"tinyproto"``, ``"tcpy"``, ``"pyts"``...)."""
    return metrics().transport(name)


def multiprocess_dir() -> str | None:
    return os.environ.get(ENV) or None


def prepare_multiprocess() -> Callable[[], None]:
    """Before starting workers: give them a fresh shared metrics directory.

    Returns the clean-up to run once they have all exited. A directory the
    user chose (``PROMETHEUS_MULTIPROC_DIR`` already set) is theirs: it is
    used as it is and left in place.
    """
    if multiprocess_dir():
        return _nothing
    path = tempfile.mkdtemp(prefix="dataserve-metrics-")
    os.environ[ENV] = path

    def clean_up() -> None:
        if os.environ.get(ENV) == path:
            del os.environ[ENV]
        shutil.rmtree(path, ignore_errors=True)

    return clean_up


def _nothing() -> None:
    return None


_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def _forget_dead_processes(path: str) -> None:
    # A worker that crashed never said it was gone: its open-connection
    # gauge would count forever. Its counters stay (they must not go down).
    from prometheus_client import multiprocess

    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        m = _LIVE_FILE.match(os.path.basename(file))
        if m is None:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, someone else's
            pass


def process_exiting() -> None:
    """A worker that stops cleanly removes its live gauges at once."""
    if _metrics is not None:
        _metrics.flush()  # what this process counted reaches the files before it goes
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The metrics in the format ``accept`` asks for: ``(body, content type)``."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    metrics().flush()  # a scrape before any request still lists the metrics
    encoder, content_type = choose_encoder(accept or "")
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        _forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
        return encoder(registry), content_type
    return encoder(REGISTRY), content_type


# The metrics' names as the multiprocess collector reports its samples.
_REQUESTS = "dataserve_requests_total"
_BUCKET = "dataserve_request_duration_seconds_bucket"
_SUM = "dataserve_request_duration_seconds_sum"
_RECEIVED = "dataserve_request_bytes_total"
_SENT = "dataserve_response_bytes_total"
_OPEN = "dataserve_open_connections"


def shared_totals() -> Totals | None:
    """Every worker's totals, summed from the shared metrics directory (other
    workers' at most ``FLUSH_INTERVAL`` behind); ``None`` in one process.

    It reads every worker's files: work for a reader that asks now and then
    (the console, once a second), not for every request.
    """
    path = multiprocess_dir()
    if not path:
        return None
    from prometheus_client import CollectorRegistry, multiprocess

    metrics().flush()
    _forget_dead_processes(path)
    collector = multiprocess.MultiProcessCollector(CollectorRegistry(), path)  # type: ignore[no-untyped-call]
    return totals_from_samples(
        sample
        for family in collector.collect()  # type: ignore[no-untyped-call]
        for sample in family.samples
    )


def totals_from_samples(samples: Iterable[Any]) -> Totals:
    """``Totals`` from Prometheus samples (``name``, ``labels``, ``value``) of
    the dataserve metrics, their histogram buckets cumulative as exposed."""
    adder = _Adder(breakdown=True)
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
