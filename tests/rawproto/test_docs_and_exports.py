"""docs/rawproto.md runs as written; rawproto's public API and its import boundary."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import rawproto
from dataserve.core.limits import Limits

from ..conftest import run_python

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "rawproto.md").read_text(encoding="utf-8")
HERE = Path(__file__).parent


def block(kind: str, name: str, lang: str) -> str:
    m = re.search(rf"<!-- {kind}: {name} -->\n```{lang}\n(.*?)```", DOC, re.DOTALL)
    assert m, f"{kind} {name} not found in docs/rawproto.md"
    return m.group(1)


@pytest.mark.parametrize("name", ["blocking", "pipelined", "token"])
def test_the_examples_print_what_the_page_says(name: str) -> None:
    result = run_python(block("example", name, "python"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == block("output", name, "text")


@pytest.mark.parametrize("name", ["server", "client"])
def test_the_tinyproto_example_is_the_seeds_as_tested(name: str) -> None:
    seed = (HERE / f"seed004_echo_{name}.py").read_text()
    code = seed.split('"""\n\n', 1)[1].replace(
        "from tinyproto import", "from rawproto.tinyproto import"
    )
    assert block("tinyproto", name, "python") == code


def test_the_limits_table_shows_the_defaults() -> None:
    table = dict(re.findall(r"^\| `(\w+)`\s*\| ([\d.]+)\s*\|", DOC, re.MULTILINE))
    assert len(table) >= 9
    defaults = {f.name: f.default for f in dataclasses.fields(Limits)}
    for name, shown in table.items():
        assert float(shown) == defaults[name], name


def test_all_matches_the_public_names() -> None:
    import types

    public = {
        name
        for name, value in vars(rawproto).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(rawproto.__all__) == (public - {"annotations"}) | {"__version__"}
    for name in rawproto.__all__:
        assert getattr(rawproto, name) is not None


def test_the_exceptions_are_dataserves() -> None:
    import dataserve

    for name in ("NotHandled", "HandlerError", "ConnectError", "PayloadTooLarge", "Limits"):
        assert getattr(rawproto, name) is getattr(dataserve, name)


def test_import_rawproto_leaves_the_http_stack_out() -> None:
    code = (
        "import sys, rawproto, rawproto.tinyproto, rawproto.proto.native\n"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'httpx') if m in sys.modules))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
