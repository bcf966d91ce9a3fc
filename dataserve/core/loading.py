"""Importing an object named ``MODULE:ATTR``, with errors that say what is wrong.

Shared by ``dataserve serve`` (handlers) and ``rawproto serve`` (tcpy and
pyts server objects).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["LoadError", "import_object"]


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
