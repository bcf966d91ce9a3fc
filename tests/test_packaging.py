"""What a user installs: the sdist's contents, the metadata, one version everywhere."""

from __future__ import annotations

import email
import importlib.metadata
import tarfile
from pathlib import Path

import dataserve
import rawproto
from tests.conftest import ROOT


def test_the_sdist_holds_the_packages_docs_and_tests_only(tmp_path: Path) -> None:
    from hatchling.builders.sdist import SdistBuilder

    (built,) = SdistBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    with tarfile.open(built) as sdist:
        names = sdist.getnames()
        info = sdist.extractfile(next(n for n in names if n.endswith("/PKG-INFO")))
        assert info is not None
        metadata = email.message_from_bytes(info.read())
    top = {name.split("/")[1] for name in names if "/" in name}
    assert {"dataserve", "rawproto", "tests", "docs", "README.md", "pyproject.toml"} <= top
    assert not top & {"bench", "fuzz", ".ci", "docker", "compose.yaml", ".bench-env", ".interop"}
    assert not [n for n in names if "__pycache__" in n]
    assert any(n.endswith("docs/deploy.md") for n in names)
    assert any(n.endswith("dataserve/py.typed") for n in names)
    assert metadata["Version"] == dataserve.__version__
    assert metadata["Author"] == "The dataserve maintainers"
    assert "test" in metadata.get_all("Provides-Extra")
    assert "dev" in metadata.get_all("Provides-Extra")


def test_one_version_everywhere() -> None:
    assert rawproto.__version__ == dataserve.__version__
    assert importlib.metadata.version("dataserve") == dataserve.__version__
    assert "__version__" in rawproto.__all__
