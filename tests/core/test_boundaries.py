"""The layering DESIGN.md promises: floors import downwards only, rawproto only the core."""

from __future__ import annotations

import ast
from pathlib import Path

import dataserve
import dataserve.core.errors as errors
from tests.conftest import run_python


def test_core_and_rawproto_do_not_import_the_http_stack() -> None:
    code = (
        "import sys, dataserve, dataserve.core, rawproto\n"
        "from dataserve import HTTPDataHandler, Router\n"
        "bad = [m for m in ('starlette', 'uvicorn', 'httpx') if m in sys.modules]\n"
        "print(bad)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_public_api_is_exported_and_listed() -> None:
    for name in dataserve.__all__:
        assert getattr(dataserve, name) is not None, name
    for name in errors.__all__:
        assert name in dataserve.__all__ or name == "error_for_status"
    assert {"HTTPDataHandler", "run_http_server", "HTTPDataClient"} <= set(dataserve.__all__)


def test_every_error_is_a_dataserve_error() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.DataServeError), name
    e = errors.error_for_status(404, "resource '/x' is not handled")
    assert isinstance(e, errors.NotHandled) and e.status == 404
    assert str(e) == "404: resource '/x' is not handled"
    assert type(errors.error_for_status(418, "teapot")) is errors.ResponseError


# --- import rules: each floor imports only the floors below it ---------------

ROOT = Path(__file__).resolve().parents[2]

# module prefix -> the prefixes it may import (besides its own package and
# third-party modules). Checked on every import statement, lazy ones inside
# functions included. Longest prefix wins.
_MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "dataserve.core": (),
    "dataserve.ops": ("dataserve.core",),
    "dataserve.http": ("dataserve.core", "dataserve.ops"),
    "dataserve.callback": ("dataserve.core", "dataserve.ops", "dataserve.http"),
    "dataserve.client": ("dataserve.core",),
    "dataserve.example": ("dataserve.core",),
    # the hand-off to workers and the top floor: everything
    "dataserve.workers": ("dataserve", "rawproto"),
    "dataserve.serving": ("dataserve", "rawproto"),
    "dataserve.cli": ("dataserve", "rawproto"),
    "dataserve.app": ("dataserve",),
    "dataserve.__init__": ("dataserve",),
    "dataserve.__main__": ("dataserve",),
    "rawproto": ("dataserve.core",),
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("dataserve", "rawproto"):
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__" and len(parts) > 1 and parts[:-1] != [package]:
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if name.endswith(".__init__"):
        package = name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            # ``from . import logs`` imports a submodule
            out.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in out if m.split(".")[0] in ("dataserve", "rawproto")}


def _rule_for(name: str) -> tuple[str, tuple[str, ...]]:
    best = max((p for p in _MAY_IMPORT if name == p or name.startswith(p + ".")), key=len)
    return best, _MAY_IMPORT[best]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_every_import_points_down_a_floor() -> None:
    wrong = []
    for name, path in _modules().items():
        own, allowed = _rule_for(name)
        for target in _imports(name, path):
            if _within(target, own) or any(_within(target, a) for a in allowed):
                continue
            wrong.append(f"{name} -> {target}")
    assert not wrong, "imports that run up or across the floors:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {
        name: {t for t in _imports(name, path) if t in modules and t != name}
        for name, path in modules.items()
    }
    # a package's __init__ importing its own submodules is how packages are
    # built, not a cycle between rooms
    for name in graph:
        graph[name] = {t for t in graph[name] if not _within(name, t) or name == t}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
