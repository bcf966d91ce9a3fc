"""dataserve.core.loading: ``MODULE:ATTR`` imported, with errors that say what is wrong."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataserve.core.handler import HTTPDataHandler
from dataserve.core.loading import (
    HandlerLoadError,
    LoadError,
    handler_spec,
    import_object,
    load_handler,
)
from dataserve.core.routing import Router

MODULE = """
from dataserve.core.handler import HTTPDataHandler
from dataserve.core.routing import Router

class Handler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        return payload

class NotAHandler:
    pass

class Outer:
    class Inner:
        value = 7

router = Router()
number = 5

def two(resource, payload):
    return payload

def one(resource):
    return resource
"""


@pytest.fixture
def mod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"loading_mod_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    sys.modules.pop("raises_on_import", None)


def test_import_object_follows_dotted_attributes(mod: str) -> None:
    assert import_object(f"{mod}:number") == 5
    assert import_object(f"{mod}:Outer.Inner.value") == 7


@pytest.mark.parametrize("spec", ["nocolon", ":attr", "module:", ""])
def test_a_spec_without_module_and_attr_is_refused(spec: str) -> None:
    with pytest.raises(LoadError, match="handler must be given as MODULE:ATTR"):
        import_object(spec, "handler")


def test_import_failures_say_what_went_wrong(mod: str) -> None:
    with pytest.raises(LoadError, match="cannot import module 'no_such_module_xyz'"):
        import_object("no_such_module_xyz:x")
    with pytest.raises(LoadError, match="raised RuntimeError: boom at import"):
        import_object("raises_on_import:x")
    with pytest.raises(LoadError, match=f"module '{mod}' has no attribute 'Outer.Nope'"):
        import_object(f"{mod}:Outer.Nope")


def test_load_handler_accepts_what_a_server_can_serve(mod: str) -> None:
    assert issubclass(load_handler(f"{mod}:Handler"), HTTPDataHandler)
    assert isinstance(load_handler(f"{mod}:router"), Router)
    assert callable(load_handler(f"{mod}:two"))


def test_load_handler_refuses_what_is_not_a_handler(mod: str) -> None:
    assert HandlerLoadError is LoadError
    with pytest.raises(HandlerLoadError, match="a class without a handle_request method"):
        load_handler(f"{mod}:NotAHandler")
    with pytest.raises(HandlerLoadError, match="is a int, not a handler"):
        load_handler(f"{mod}:number")
    with pytest.raises(HandlerLoadError, match=r"cannot be called as fn\(resource, payload\)"):
        load_handler(f"{mod}:one")


def test_a_builtin_without_a_signature_is_trusted() -> None:
    assert load_handler("builtins:max") is max


class TopLevel(HTTPDataHandler):
    pass


def top_level(resource: str, payload: object) -> object:
    return payload


def test_handler_spec_names_top_level_handlers() -> None:
    assert handler_spec("pkg.mod:attr") == "pkg.mod:attr"
    assert handler_spec(TopLevel) == f"{__name__}:TopLevel"
    assert handler_spec(TopLevel()) == f"{__name__}:TopLevel"
    assert handler_spec(top_level) == f"{__name__}:top_level"


def test_handler_spec_refuses_what_cannot_be_imported_by_name() -> None:
    def local(resource: str, payload: object) -> object:
        return payload

    with pytest.raises(HandlerLoadError, match="give it as MODULE:ATTR"):
        handler_spec(local)
    with pytest.raises(HandlerLoadError):
        handler_spec(lambda r, p: p)
