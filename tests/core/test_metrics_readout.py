"""dataserve.core.metrics.readout: the scrape's exposition and the sum over workers.

The multiprocess directory is a temporary one set for the test only; what
each "worker" wrote is made by prometheus-client itself in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dataserve.core.metrics import readout
from dataserve.core.metrics.readout import (
    ENV,
    exposition,
    multiprocess_dir,
    prepare_multiprocess,
    shared_totals,
)


def test_without_the_variable_there_is_no_multiprocess_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert multiprocess_dir() is None
    monkeypatch.setenv(ENV, "")
    assert multiprocess_dir() is None
    assert shared_totals() is None  # one process: nothing to sum


def test_prepare_makes_a_fresh_directory_and_cleans_it_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    clean_up = prepare_multiprocess()
    path = os.environ[ENV]
    assert os.path.isdir(path) and os.listdir(path) == []
    assert "dataserve-metrics-" in path
    clean_up()
    assert ENV not in os.environ and not os.path.exists(path)


def test_a_directory_the_user_chose_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path))
    clean_up = prepare_multiprocess()
    clean_up()
    assert os.environ[ENV] == str(tmp_path) and tmp_path.is_dir()


def test_the_exposition_follows_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    body, content_type = exposition(None)
    assert content_type.startswith("text/plain") and b"dataserve_requests_total" in body
    body, content_type = exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


WORKER = textwrap.dedent(
    """
    from dataserve.core.metrics import metrics, process_exiting
    rec = metrics().transport("http")
    rec.connection_opened()
    rec.observe("/x", 200, 0.01, 3, 4)
    metrics().flush()
    if EXIT_CLEANLY:
        process_exiting()
    """
)


def run_worker(path: Path, cleanly: bool) -> int:
    env = {**os.environ, ENV: str(path)}
    code = WORKER.replace("EXIT_CLEANLY", str(cleanly))
    proc = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    return proc.returncode


def test_shared_totals_add_up_the_workers_and_forget_the_dead_ones_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_worker(tmp_path, cleanly=True)
    run_worker(tmp_path, cleanly=False)  # a crash: its live gauge file stays behind
    assert any(f.startswith("gauge_live") for f in os.listdir(tmp_path))
    monkeypatch.setenv(ENV, str(tmp_path))
    totals = shared_totals()
    assert totals is not None
    assert (totals.requests, totals.bytes_in, totals.bytes_out) >= (2, 6, 8)
    assert totals.by_resource.get("/x") == 2
    assert totals.open_connections.get("http", 0) == 0  # both workers are gone
    assert not any(f.startswith("gauge_live") for f in os.listdir(tmp_path))
    body, _ = exposition(None)
    assert b'dataserve_requests_total{resource="/x",status="200",transport="http"} 2.0' in body


def test_process_exiting_without_a_directory_only_flushes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    readout.process_exiting()  # nothing to mark dead; must not raise
