"""dataserve.core.handler: what users pass as a handler, and how it is called."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dataserve.core.dispatch import Dispatcher, inline
from dataserve.core.handler import DataHandlerLike, HTTPDataHandler, make_caller, resolve_handler
from dataserve.core.routing import Router


class Echo(HTTPDataHandler):
    instances = 0

    def __init__(self) -> None:
        Echo.instances += 1

    def handle_request(self, resource: str, payload: Any) -> Any:
        return (resource, payload, threading.current_thread().name)


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    d = Dispatcher(threads=2, name="test-handler")
    yield d
    d.close(wait=5)


def test_the_base_class_handles_nothing() -> None:
    assert HTTPDataHandler().handle_request("/x", 1) is None
    assert isinstance(HTTPDataHandler(), DataHandlerLike)
    assert not isinstance(object(), DataHandlerLike)


def test_a_class_is_instantiated_once() -> None:
    before = Echo.instances
    method = resolve_handler(Echo)
    assert Echo.instances == before + 1
    assert method("/r", 2)[:2] == ("/r", 2)  # type: ignore[operator]


def test_an_instance_a_router_and_a_function_are_taken_as_they_are() -> None:
    echo = Echo()
    assert resolve_handler(echo) == echo.handle_request
    router: Router[Any] = Router()
    assert resolve_handler(router) is router

    def fn(resource: str, payload: Any) -> Any:
        return payload

    assert resolve_handler(fn) is fn


def test_what_is_not_a_handler_is_a_type_error() -> None:
    class NoMethod:
        pass

    with pytest.raises(TypeError, match="NoMethod has no handle_request method"):
        resolve_handler(NoMethod)
    with pytest.raises(TypeError, match="not int"):
        resolve_handler(42)


def test_a_def_handler_runs_on_the_dispatchers_threads(dispatcher: Dispatcher) -> None:
    caller = make_caller(Echo, dispatcher)

    async def main() -> Any:
        return await caller("/a", [1])  # the pool's future completes on this loop

    resource, payload, thread = asyncio.run(main())
    assert (resource, payload) == ("/a", [1])
    assert thread.startswith("test-handler")


def test_an_async_or_inline_handler_runs_on_the_loop(dispatcher: Dispatcher) -> None:
    main = threading.current_thread().name

    async def on_loop(resource: str, payload: Any) -> Any:
        return threading.current_thread().name

    @inline
    def inlined(resource: str, payload: Any) -> Any:
        return threading.current_thread().name

    assert asyncio.run(make_caller(on_loop, dispatcher)("/a", None)) == main
    assert asyncio.run(make_caller(inlined, dispatcher)("/a", None)) == main


def test_a_router_matches_on_the_loop_and_passes_the_path_params(dispatcher: Dispatcher) -> None:
    router: Router[Any] = Router()
    calls: list[Any] = []

    @router.route("/items/{name}")
    def item(payload: Any, name: str) -> Any:
        calls.append(name)
        return {"name": name, "payload": payload}

    caller = make_caller(router, dispatcher)

    async def main() -> list[Any]:
        return [
            await caller("/items/a", 1),
            await caller("/items/b", 2),
            await caller("/elsewhere", 3),
        ]

    assert asyncio.run(main()) == [{"name": "a", "payload": 1}, {"name": "b", "payload": 2}, None]
    assert calls == ["a", "b"]
