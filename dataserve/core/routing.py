"""Routes: names or path templates to endpoints, shared by every transport.

A route is an exact string (``'/xdata'``, or a tcpy command name such as
``'add'``) or a template with ``{name}`` parameters (``'/items/{id}'``, one
path segment) and ``{name:path}`` (the rest of the path, slashes included).
Matching is pure: ``match(path)`` returns the endpoint and the captured
parameters, or ``None``. Exact routes are a dictionary look-up; templates are
tried in the order they were added.

A ``Router`` is also a data handler: ``handle_request(resource, payload)``
calls ``endpoint(payload, **params)`` for the matching route and returns
``None`` (not handled: 404) when none matches, so a router can be served
wherever an ``HTTPDataHandler`` can.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Match", "Route", "Router"]

E = TypeVar("E")

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path|str))?\}")


@dataclass(frozen=True, slots=True)
class Match(Generic[E]):
    endpoint: E
    params: dict[str, str]


class Route(Generic[E]):
    """One template compiled to a regular expression."""

    __slots__ = ("endpoint", "param_names", "pattern", "regex")

    def __init__(self, pattern: str, endpoint: E) -> None:
        self.pattern = pattern
        self.endpoint = endpoint
        names: list[str] = []
        parts: list[str] = []
        pos = 0
        for m in _PARAM.finditer(pattern):
            parts.append(re.escape(pattern[pos : m.start()]))
            name, kind = m.group(1), m.group(2)
            if name in names:
                raise ValueError(f"parameter {name!r} appears twice in {pattern!r}")
            names.append(name)
            parts.append(f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)")
            pos = m.end()
        parts.append(re.escape(pattern[pos:]))
        self.param_names = tuple(names)
        self.regex = re.compile("".join(parts) + r"\Z")

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.match(path)
        return m.groupdict() if m else None


class Router(Generic[E]):
    """Exact names and ``{param}`` templates mapped to endpoints."""

    def __init__(self, routes: dict[str, E] | None = None) -> None:
        self._exact: dict[str, E] = {}
        self._templates: list[Route[E]] = []
        for pattern, endpoint in (routes or {}).items():
            self.add(pattern, endpoint)

    def add(self, pattern: str, endpoint: E) -> None:
        """Add a route; adding the same pattern twice is an error."""
        if pattern in self._exact or any(r.pattern == pattern for r in self._templates):
            raise ValueError(f"route {pattern!r} is already defined")
        if _PARAM.search(pattern):
            self._templates.append(Route(pattern, endpoint))
        else:
            self._exact[pattern] = endpoint

    def route(self, pattern: str) -> Callable[[E], E]:
        """Decorator form of ``add``."""

        def register(endpoint: E) -> E:
            self.add(pattern, endpoint)
            return endpoint

        return register

    def match(self, path: str) -> Match[E] | None:
        endpoint = self._exact.get(path)
        if endpoint is not None:
            return Match(endpoint, {})
        for route in self._templates:
            params = route.match(path)
            if params is not None:
                return Match(route.endpoint, params)
        return None

    def __contains__(self, path: str) -> bool:
        return self.match(path) is not None

    def __iter__(self) -> Any:
        yield from self._exact
        for route in self._templates:
            yield route.pattern

    def __len__(self) -> int:
        return len(self._exact) + len(self._templates)
