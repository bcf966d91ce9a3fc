"""The layering DESIGN.md promises: the core and rawproto never import Starlette."""

from __future__ import annotations

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
