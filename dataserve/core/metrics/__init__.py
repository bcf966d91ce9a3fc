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

The modules: ``totals`` (the plain numbers and how they add up),
``recorder`` (``TransportMetrics``, one transport's tallies), ``registry``
(``Metrics``, the Prometheus metrics and the flusher thread; ``metrics()``)
and ``readout`` (the scrape's exposition, the sum over workers, and the
shared directory's life cycle).
"""

from __future__ import annotations

from .readout import ENV as ENV
from .readout import exposition as exposition
from .readout import multiprocess_dir as multiprocess_dir
from .readout import prepare_multiprocess as prepare_multiprocess
from .readout import process_exiting as process_exiting
from .readout import shared_totals as shared_totals
from .recorder import TransportMetrics as TransportMetrics
from .registry import FLUSH_INTERVAL as FLUSH_INTERVAL
from .registry import HISTORY_INTERVAL as HISTORY_INTERVAL
from .registry import HISTORY_LENGTH as HISTORY_LENGTH
from .registry import OTHER as OTHER
from .registry import Metrics as Metrics
from .registry import metrics as metrics
from .registry import transport_metrics as transport_metrics
from .totals import BUCKETS as BUCKETS
from .totals import Totals as Totals
from .totals import totals_from_samples as totals_from_samples

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
