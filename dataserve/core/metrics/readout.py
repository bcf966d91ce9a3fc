"""The metrics read out: the scrape's exposition, and the sum over workers.

With several workers, each writes its values to the directory in
``PROMETHEUS_MULTIPROC_DIR`` (``prepare_multiprocess`` makes a fresh one
before they start); a scrape or ``shared_totals()`` adds them all up, after
forgetting the live gauges of workers that died.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable

from .registry import current, metrics
from .totals import Totals, totals_from_samples

__all__ = [
    "ENV",
    "exposition",
    "multiprocess_dir",
    "prepare_multiprocess",
    "process_exiting",
    "shared_totals",
]

ENV = "PROMETHEUS_MULTIPROC_DIR"


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
    own = current()
    if own is not None:
        own.flush()  # what this process counted reaches the files before it goes
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
