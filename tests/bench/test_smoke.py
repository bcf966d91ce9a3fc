"""The benchmark suite in smoke mode: every scenario runs briefly and the report is written.

No target is asserted (numbers from a short run on a shared machine mean
nothing); what is checked is that the suite cannot rot: each scenario either
measured something or says why it could not, and nothing crashed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.env import PREPARE
from bench.scenarios import ALL

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_scenario_runs_in_smoke_mode(tmp_path: Path) -> None:
    report_in_repo = ROOT / "docs" / "benchmarks.md"
    before = report_in_repo.stat().st_mtime_ns if report_in_repo.exists() else None
    # --no-install: the tests never install peers or tools; what is missing is
    # reported as not measured, saying how to get it (`python -m bench --prepare`,
    # which CI runs first, so that there everything is measured).
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-install", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    report = (tmp_path / "benchmarks.md").read_text()
    for scenario in ALL:
        section = results["sections"][scenario.NAME]
        assert not section["skipped"].startswith("the scenario failed"), section["skipped"]
        measured = any(row["values"] for table in section["tables"] for row in table["rows"])
        # Measured, or each missing piece is reported with its reason.
        assert measured or section["skipped"] or section["not_measured"], scenario.NAME
        assert f"## {scenario.TITLE}" in report
        for what, why in section["not_measured"]:
            assert why, what
        if os.environ.get("CI") == "true":  # CI prepared every peer and tool
            reasons = [section["skipped"], *(why for _, why in section["not_measured"])]
            assert not [r for r in reasons if PREPARE in r], scenario.NAME
    # A smoke run writes where it is told, never over the repository's report.
    after = report_in_repo.stat().st_mtime_ns if report_in_repo.exists() else None
    assert after == before


def test_one_scenario_alone_and_the_list(tmp_path: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "--list"], cwd=ROOT, capture_output=True, text=True
    )
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [m.NAME for m in ALL]
    unknown = subprocess.run(
        [sys.executable, "-m", "bench", "no-such-scenario"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 2 and "unknown scenario" in unknown.stderr
