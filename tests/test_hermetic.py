"""Running the tests never changes the machine; what they lack, they say how to get.

The originals are fetched into ``.interop/`` of the checkout or the test
skips (``CI=true``: fails, because ``.ci/run`` prepared them); a missing tool
skips the same way; the benchmark smoke run installs nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bench.env
import tests.conftest as conftest
from bench.env import Env, NotMeasured


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """pip with no index to reach, and a fresh cache folder."""
    monkeypatch.setattr(conftest, "INTEROP_DIR", tmp_path / ".interop")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)


def test_offline_the_originals_skip_saying_how_to_get_them(
    offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.interop_target("old", "dataserve==0.1.0")
    assert "cannot fetch the original dataserve==0.1.0 from PyPI" in str(skipped.value)
    assert "python -m tests.interop" in str(skipped.value)
    assert not (conftest.INTEROP_DIR / "old").exists()  # nothing half-installed left


def test_in_ci_a_missing_original_fails(offline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI prepares it: see \.ci/run"):
        conftest.interop_target("old", "dataserve==0.1.0")


def test_a_missing_tool_skips_with_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(conftest.shutil, "which", lambda *a, **k: None)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install slowhttptest"):
        conftest.need_tool("slowhttptest")


def test_the_bench_smoke_environment_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = Env(root=tmp_path, log=False, install=False)
    with pytest.raises(NotMeasured, match=r"python -m bench --prepare"):
        env.peer("fastapi")
    env.prepare(["fastapi"])
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(bench.env.shutil, "which", lambda *a, **k: None)
    with pytest.raises(NotMeasured, match=r"apt-get install iperf3"):
        env.tool("iperf3")


def test_no_test_runs_apt_get_or_installs_into_the_system() -> None:
    root = Path(conftest.ROOT)
    offenders = []
    for path in [*root.glob("tests/**/*.py"), *root.glob("bench/**/*.py")]:
        text = path.read_text()
        if path.name == "test_hermetic.py":
            continue
        for match in re.finditer(r'"apt-get"|apt-get install -y|"--user"|sudo ', text):
            if path.as_posix().endswith("bench/env.py"):
                continue  # only behind `python -m bench --prepare`, never from the tests
            offenders.append(f"{path.relative_to(root)}: {match.group(0)}")
    assert not offenders
