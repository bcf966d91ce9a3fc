"""The process's metrics: ``Metrics`` holds the Prometheus counters, gauge and
histogram, one ``TransportMetrics`` per transport, the flusher thread and the
one-a-second ``history``; ``metrics()`` is the process's one instance."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .recorder import TransportMetrics
from .totals import BUCKETS, Adder, Totals

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "FLUSH_INTERVAL",
    "HISTORY_INTERVAL",
    "HISTORY_LENGTH",
    "OTHER",
    "Metrics",
    "current",
    "metrics",
    "transport_metrics",
]

#: The resource label for every resource that has no label of its own.
OTHER = "other"

#: Seconds between flushes of the request tallies into the Prometheus metrics.
FLUSH_INTERVAL = 0.5

#: Seconds between the entries of ``Metrics.history``, and how many it keeps
#: (five minutes: what a glance at the console's chart covers).
HISTORY_INTERVAL = 1.0
HISTORY_LENGTH = 300

# A longer path is not a name anyone charts; it shares "other".
_MAX_LABEL_LEN = 200


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
        adder = Adder(breakdown)
        for transport in list(self._transports.values()):
            transport.add_to(adder)
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
            transport.forked()

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


def current() -> Metrics | None:
    """The process's ``Metrics`` if something created it, without creating it."""
    return _metrics
