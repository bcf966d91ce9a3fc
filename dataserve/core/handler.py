"""The data handler users write once and serve over every transport."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from .dispatch import Dispatcher
from .routing import Router

__all__ = ["Caller", "DataHandlerLike", "HTTPDataHandler", "make_caller", "resolve_handler"]

#: ``await caller(resource, payload)`` -> the handler's return value.
Caller = Callable[[str, Any], Awaitable[Any]]


class HTTPDataHandler:
    """Base class for a user's data handler (seed 001's API).

    Override ``handle_request(resource, payload)``; it may be ``def`` or
    ``async def``. ``resource`` is the path (``'/xdata'``), ``payload`` the
    decoded body: ``str``, a JSON value, ``bytes``, or ``None`` when the
    request had no body. Return a ``str``, a JSON-able value or bytes; the
    media type is detected. Returning ``None`` means the resource is not
    handled (404). One instance serves every request of a server process.
    """

    def handle_request(self, resource: str, payload: Any) -> Any:
        """Answer ``payload`` sent to ``resource``; ``None`` means not handled."""
        return None


@runtime_checkable
class DataHandlerLike(Protocol):
    def handle_request(self, resource: str, payload: Any) -> Any: ...


def resolve_handler(handler: Any) -> Callable[[str, Any], Any] | Router[Any]:
    """The ``handle_request(resource, payload)`` callable behind what users pass.

    Accepts an ``HTTPDataHandler`` subclass (instantiated once, as the seed
    passes the class), an instance of one or of any class with
    ``handle_request``, a ``Router`` (returned as it is), or a plain
    ``fn(resource, payload)``.
    """
    if inspect.isclass(handler):
        if not hasattr(handler, "handle_request"):
            raise TypeError(f"{handler.__name__} has no handle_request method")
        handler = handler()
    if isinstance(handler, Router):
        return handler
    method = getattr(handler, "handle_request", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    if callable(handler):
        return handler  # type: ignore[no-any-return]
    raise TypeError(
        f"expected an HTTPDataHandler subclass or instance, a Router or a callable, "
        f"not {type(handler).__name__}"
    )


def make_caller(handler: Any, dispatcher: Dispatcher) -> Caller:
    """``await caller(resource, payload)`` runs the handler by its policy.

    For a ``Router`` the match runs on the loop (it is pure and cheap) and each
    endpoint is called as ``endpoint(payload, **params)`` with its own policy,
    decided once per endpoint.
    """
    target = resolve_handler(handler)
    if not isinstance(target, Router):
        return dispatcher.prepare(target)
    router = target
    prepared: dict[int, Callable[..., Awaitable[Any]]] = {}

    async def call_route(resource: str, payload: Any) -> Any:
        match = router.match(resource)
        if match is None:
            return None
        endpoint = match.endpoint
        run = prepared.get(id(endpoint))
        if run is None:
            run = prepared[id(endpoint)] = dispatcher.prepare(endpoint)
        return await run(payload, **match.params)

    return call_route
