"""Importing an object named ``MODULE:ATTR``, with errors that say what is wrong.

Shared by ``dataserve serve`` (handlers), ``rawproto serve`` (handlers, tcpy
and pyts server objects) and the worker processes, which import the handler
by name (``dataserve.workers``).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

__all__ = ["HandlerLoadError", "LoadError", "handler_spec", "import_object", "load_handler"]


class LoadError(Exception):
    """The object named by ``MODULE:ATTR`` cannot be loaded; one clear line."""


def import_object(spec: str, what: str = "object") -> Any:
    """Import ``MODULE:ATTR`` (``ATTR`` may be dotted) from the current directory too."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise LoadError(f"{what} must be given as MODULE:ATTR, not {spec!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # as `python -m` and uvicorn do: the current directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LoadError(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise LoadError(
            f"importing module {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


#: The handler named by ``MODULE:ATTR`` cannot be loaded; one clear line.
HandlerLoadError = LoadError


def load_handler(spec: str) -> Any:
    """Import ``MODULE:ATTR`` and check it is something a server can serve."""
    obj = import_object(spec, "handler")
    from .routing import Router

    if isinstance(obj, Router) or hasattr(obj, "handle_request"):
        return obj
    if isinstance(obj, type):
        raise HandlerLoadError(
            f"{spec} is a class without a handle_request method, not a handler "
            "(an HTTPDataHandler subclass or instance, a Router or a callable)"
        )
    if callable(obj):
        _check_arity(spec, obj)
        return obj
    raise HandlerLoadError(
        f"{spec} is a {type(obj).__name__}, not a handler "
        "(an HTTPDataHandler subclass or instance, a Router or a callable)"
    )


def _check_arity(spec: str, fn: Any) -> None:
    """A plain callable is called as ``fn(resource, payload)``: say so now, not per request."""
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise HandlerLoadError(
            f"{spec} cannot be called as fn(resource, payload), so it is not a handler"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): trust it
        pass


def handler_spec(handler: Any) -> str:
    """``MODULE:ATTR`` for a handler defined at a module's top level."""
    if isinstance(handler, str):
        return handler
    target = handler if isinstance(handler, type) or callable(handler) else type(handler)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise HandlerLoadError(
            "several workers import the handler by name: give it as MODULE:ATTR "
            "from an importable module (not __main__)"
        )
    return f"{module}:{qualname}"
