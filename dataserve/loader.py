"""Loading a handler from ``MODULE:ATTR``, with errors that say what is wrong."""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

from .core.limits import DEFAULT_LIMITS, Limits
from .core.loading import LoadError, import_object

__all__ = ["HandlerLoadError", "dump_limits", "handler_spec", "load_handler", "load_limits"]


#: The handler named by ``MODULE:ATTR`` cannot be loaded; one clear line.
HandlerLoadError = LoadError


def load_handler(spec: str) -> Any:
    """Import ``MODULE:ATTR`` and check it is something a server can serve."""
    obj = import_object(spec, "handler")
    from .core.routing import Router

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


def dump_limits(limits: Limits) -> str:
    return json.dumps(dataclasses.asdict(limits))


def load_limits(text: str | None) -> Limits:
    if not text:
        return DEFAULT_LIMITS
    return Limits(**json.loads(text))
