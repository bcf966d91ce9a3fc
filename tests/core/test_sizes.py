"""Rooms small enough to read: no module over 500 lines, no class over 250."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE = 500
MAX_CLASS = 250


def _sources() -> list[Path]:
    packages = (ROOT / "dataserve", ROOT / "rawproto")
    return sorted(path for package in packages for path in package.rglob("*.py"))


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE
    }
    assert long == {}


def test_no_class_is_over_250_lines() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_CLASS:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = n
    assert long == {}
