"""The console's live figures: what ``GET {prefix}/stats`` reports besides the status.

Everything here is read when asked (the console asks once a second) from
numbers that are kept anyway: the metrics' running totals and their
history (``dataserve.core.metrics``), the handler pool's activity, and the
requests in flight that the observer keeps (``dataserve.ops.observe``).
Nothing is added to a request's path but that set entry.

Rates and latency percentiles cover the last ``WINDOW`` seconds. The
percentiles are estimated from the latency histogram's buckets, as
Prometheus' ``histogram_quantile`` does: within a bucket, requests are taken
to be spread evenly.

With several workers the request figures add up every worker (from the
shared metrics files); the connections, threads and requests in flight are
the answering worker's, and so is the chart's record of the sums, which
starts when a page first asks that worker.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..core.dispatch import HandlerPool
from ..core.metrics import (
    BUCKETS,
    HISTORY_INTERVAL,
    HISTORY_LENGTH,
    Totals,
    metrics,
    multiprocess_dir,
    shared_totals,
)
from .observe import Observer

__all__ = ["STUCK_AFTER", "WINDOW", "Stats", "quantile"]

#: Seconds the rates and percentiles cover: long enough to smooth a burst,
#: short enough to follow a change within a few refreshes.
WINDOW = 5.0
#: A request in flight for longer than this counts as stuck. A handler that
#: blocks shows here first (and, past ``handler_timeout``, gets 504).
STUCK_AFTER = 10.0


# What the request figures are, all None when the metrics are off.
_REQUEST_FIGURES = (
    "requests",
    "errors",
    "requests_per_second",
    "errors_per_second",
    "latency",
    "bytes_in",
    "bytes_out",
    "open_connections",
    "connections",
    "by_status",
    "by_resource",
    "by_transport",
)


def quantile(q: float, buckets: Sequence[int]) -> float | None:
    """The ``q`` quantile (0 to 1) of the durations counted in ``buckets``
    (one count per ``BUCKETS`` bound, not cumulative); ``None`` for no requests.

    Interpolated within the bucket the rank falls in; in the last, unbounded
    bucket, its lower bound (the largest finite one) is all that is known.
    """
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    below = 0
    for i, n in enumerate(buckets):
        if n > 0 and below + n >= rank:
            lower = BUCKETS[i - 1] if i else 0.0
            upper = BUCKETS[i]
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / n
        below += n
    return BUCKETS[-2]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _between(a: Totals, b: Totals) -> dict[str, Any]:
    """Rates and percentiles of what happened from ``a`` to ``b``."""
    seconds = b.time - a.time
    window = [y - x for x, y in zip(a.buckets, b.buckets, strict=True)]
    return {
        "rps": round((b.requests - a.requests) / seconds, 3) if seconds > 0 else 0.0,
        "eps": round((b.errors - a.errors) / seconds, 3) if seconds > 0 else 0.0,
        "p50": _rounded(quantile(0.5, window), 6),
        "p99": _rounded(quantile(0.99, window), 6),
    }


class Stats:
    """Builds the figures of ``GET {prefix}/stats`` for one app.

    ``pool`` runs the app's ``def`` handlers (``threads`` of them at most);
    ``observer`` keeps its requests in flight (``None``: not known);
    ``metrics_on`` says whether the metrics the request figures come from
    are recorded at all.
    """

    def __init__(
        self,
        *,
        pool: HandlerPool,
        threads: int,
        observer: Observer | None,
        metrics_on: bool,
    ) -> None:
        self._pool = pool
        self._threads = threads
        self._observer = observer
        self.metrics_on = metrics_on
        #: Where rates start while the history is younger than a window: the
        #: totals as this app found them (another app of the process may have
        #: served before).
        self.origin = (
            metrics().totals(breakdown=False)
            if metrics_on and not multiprocess_dir()
            else Totals(time.monotonic(), time.time())
        )
        # With several workers: the sums this worker read, at most one a second.
        self._shared: deque[Totals] = deque(maxlen=HISTORY_LENGTH)
        self._shared_lock = threading.Lock()

    @property
    def shared(self) -> bool:
        """The request figures come from every worker's files (read them off the loop)."""
        return self.metrics_on and bool(multiprocess_dir())

    def totals(self) -> tuple[Totals, list[Totals]] | None:
        """The totals now and the history before them; ``None`` without metrics.

        With several workers this reads their files: call it off the event loop.
        """
        if not self.metrics_on:
            return None
        now = shared_totals()
        if now is None:
            m = metrics()
            now = m.totals()
            return now, list(m.history)
        with self._shared_lock:
            ring = self._shared
            if not ring or now.time - ring[-1].time >= HISTORY_INTERVAL:
                ring.append(now)
            return now, list(ring)

    def figures(
        self, totals: tuple[Totals, list[Totals]] | None, since: float | None = None
    ) -> dict[str, Any]:
        """The live figures (see the README's table), with the chart's points
        after ``since`` (a ``t`` of an earlier answer; ``None``: all of them).

        Reads the requests in flight: call it on the event loop.
        """
        out: dict[str, Any] = {"time": round(time.time(), 3), "window": WINDOW}
        out.update(self._requests(totals, since))
        busy, queued = self._pool.activity
        out["handler_threads"] = {"limit": self._threads, "busy": busy, "queued": queued}
        out["in_flight"] = self._in_flight()
        return out

    def _requests(
        self, totals: tuple[Totals, list[Totals]] | None, since: float | None
    ) -> dict[str, Any]:
        if totals is None:
            return {name: None for name in _REQUEST_FIGURES} | {"history": []}
        now, history = totals
        # Rates start from the newest totals at least a window old, or the
        # oldest there are. With several workers the origin (zero, at this
        # worker's start) is no sample of the sums: others may have counted.
        candidates = history if self.shared else [self.origin, *history]
        older = [c for c in candidates if now.time - c.time >= WINDOW]
        if older:
            base = max(older, key=lambda c: c.time)
        else:
            base = min(candidates, key=lambda c: c.time, default=now)
        span = _between(base, now)
        points = []
        for a, b in itertools.pairwise(history):
            t = round(b.wall, 3)  # as sent, so that since=t leaves this point out
            if since is None or t > since:
                points.append({"t": t, **_between(a, b)})
        return {
            "requests": now.requests,
            "errors": now.errors,
            "requests_per_second": span["rps"],
            "errors_per_second": span["eps"],
            "latency": {"p50": span["p50"], "p99": span["p99"]},
            "bytes_in": now.bytes_in,
            "bytes_out": now.bytes_out,
            "open_connections": sum(now.open_connections.values()),
            "connections": now.open_connections,
            "by_status": {str(status): n for status, n in sorted(now.by_status.items())},
            "by_resource": dict(sorted(now.by_resource.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_transport": now.by_transport,
            "history": points,
        }

    def _in_flight(self) -> dict[str, Any] | None:
        if self._observer is None or self._observer.in_flight is None:
            return None
        now = time.perf_counter()
        ages = [now - seen.start for seen in list(self._observer.in_flight)]
        return {
            "requests": len(ages),
            "oldest": round(max(ages), 3) if ages else 0.0,
            "stuck": sum(1 for age in ages if age > STUCK_AFTER),
            "stuck_after": STUCK_AFTER,
        }
