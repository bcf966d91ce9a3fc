"""One definition per default: the host, the listen backlog and the client timeouts.

Each lives in ``dataserve.core.net``; everything else names the constant. The
scan reads the source of both packages (docstrings excepted), so a literal
copied back into a signature, a flag or a ``listen()`` call fails here.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

from dataserve.core import net

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "dataserve" / "core" / "net.py"


def _sources() -> Iterator[tuple[Path, ast.AST]]:
    for package in ("dataserve", "rawproto"):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants in ``tree``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


def test_the_default_host_is_written_once() -> None:
    assert net.DEFAULT_HOST == "127.0.0.1"
    found = []
    for path, tree in _sources():
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and node.value == "127.0.0.1"
                and id(node) not in skip
            ):
                found.append(_where(path, node))
    assert found == [f"dataserve/core/net.py:{_line_of(NET, 'DEFAULT_HOST =')}"], found


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_no_listen_backlog_is_written_outside_the_core() -> None:
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            literal = None
            if isinstance(node, ast.keyword) and node.arg == "backlog":
                literal = node.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "listen"
                and node.args
            ):
                literal = node.args[0]
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and "backlog" in t.id.lower() for t in targets):
                    literal = node.value
            if isinstance(literal, ast.Constant) and path != NET:
                found.append(_where(path, node))
    assert not found, f"listen backlogs written as numbers: {found}"


def test_the_backlog_is_the_one_every_listener_uses() -> None:
    from dataserve.core.limits import DEFAULT_LIMITS
    from dataserve.http.server import uvicorn_config

    # uvicorn listens again on the socket it is given: with the same number.
    assert uvicorn_config(object(), DEFAULT_LIMITS).backlog == net.BACKLOG


def test_no_timeout_default_is_a_number_in_a_signature() -> None:
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(
                zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
            )
            pairs += [
                (a, d)
                for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                if d is not None
            ]
            for arg, default in pairs:
                if (
                    "timeout" in arg.arg
                    and isinstance(default, ast.Constant)
                    and isinstance(default.value, int | float)
                ):
                    found.append(f"{_where(path, node)} {arg.arg}={default.value}")
    assert not found, f"timeout defaults written as numbers: {found}"


def test_the_clients_take_their_timeouts_from_the_core() -> None:
    from rawproto import client as raw_client
    from rawproto.native.exchange import CONNECT_TIMEOUT
    from rawproto.pyts import Request
    from rawproto.tcpy import TCPClient

    assert raw_client.DEFAULT_TIMEOUT == net.CLIENT_TIMEOUT
    assert CONNECT_TIMEOUT == net.CONNECT_TIMEOUT
    for facade in (TCPClient, Request):
        default = inspect.signature(facade).parameters["timeout"].default
        assert default == net.FACADE_CLIENT_TIMEOUT, facade


def test_the_servers_default_to_the_core_host() -> None:
    from dataserve.http.server import BackgroundServer
    from dataserve.serving import run_http_server
    from rawproto.engine import RawServer
    from rawproto.native.server import BackgroundRawServer, serve, start_server

    for func in (run_http_server, BackgroundServer, RawServer, serve, start_server,
                 BackgroundRawServer):  # fmt: skip
        assert inspect.signature(func).parameters["host"].default == net.DEFAULT_HOST, func
