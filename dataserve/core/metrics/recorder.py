"""What one transport records: ``TransportMetrics``, its requests tallied in
plain integers and flushed into the Prometheus metrics its owner holds."""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any, Protocol

from .totals import BUCKETS, Adder, Tally

__all__ = ["Owner", "TransportMetrics"]


class Owner(Protocol):
    """What a ``TransportMetrics`` needs of the ``Metrics`` that made it."""

    flushing: bool
    open_connections: Any
    connections: Any

    def start_flushing(self) -> None: ...

    def resource_label(self, resource: str, status: int) -> str: ...

    def children(self, transport: str, resource: str, status: int) -> tuple[Any, Any, Any, Any]: ...


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

    def __init__(self, owner: Owner, transport: str) -> None:
        self._owner = owner
        self.transport = transport
        self._open = owner.open_connections.labels(transport)
        self._accepted = owner.connections.labels(transport)
        self._children: dict[tuple[str, int], tuple[Any, Any, Any, Any]] = {}
        self._tallies: dict[tuple[str, int], Tally] = {}
        self._lock = threading.Lock()
        # Everything flushed so far, for Metrics.totals(). Its own lock:
        # observe() never waits for a reader of the totals.
        self._totals: dict[tuple[str, int], Tally] = {}
        self._totals_lock = threading.Lock()

    def forked(self) -> None:
        """In a forked child: a fresh tally lock, for the parent's may have
        been held by a thread the child does not have."""
        self._lock = threading.Lock()

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
                tally = self._tallies[key] = Tally(self._children_for(key))
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
                    total = self._totals[key] = Tally(None)
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

    def add_to(self, adder: Adder) -> None:
        with self._totals_lock:
            for (resource, status), total in self._totals.items():
                adder.count(self.transport, resource, status, total.count)
                adder.seconds += total.seconds
                adder.bytes_in += total.bytes_in
                adder.bytes_out += total.bytes_out
                adder.buckets = [a + b for a, b in zip(adder.buckets, total.buckets, strict=True)]
