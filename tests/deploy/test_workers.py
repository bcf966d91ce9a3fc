"""dataserve.workers: the hand-off from the parent process to its workers, through the environment.

Each test hands off in this process (the environment is the test's own,
restored after) and builds the app as a worker would, in process.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dataserve import workers
from dataserve.core.handler import HTTPDataHandler
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.loading import HandlerLoadError
from dataserve.core.net import bind_socket
from dataserve.core.security import TOKEN_ENV
from dataserve.http.app import DataServeApp
from dataserve.ops.config import DEFAULT_OPS, OpsConfig
from rawproto import RawDataClient

VARIABLES = (
    workers.HANDLER_ENV,
    workers.LIMITS_ENV,
    workers.OPS_ENV,
    workers.NATIVE_ENV,
    workers.SERVING_ENV,
    TOKEN_ENV,
)


class Doubler(HTTPDataHandler):
    def handle_request(self, resource: str, payload: Any) -> Any:
        return payload * 2


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    for name in VARIABLES:  # hand_off writes os.environ directly
        os.environ.pop(name, None)


def call(app: DataServeApp, payload: Any, resource: str = "/x") -> httpx.Response:
    async def main() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
                return await client.put(resource, json=payload, headers=_auth())

    return asyncio.run(main())


def _auth() -> dict[str, str]:
    token = os.environ.get(TOKEN_ENV)
    return {"authorization": f"Bearer {token}"} if token else {}


def test_hand_off_writes_what_the_workers_read() -> None:
    limits = Limits(max_body_size=1234, handler_threads=3)
    ops = OpsConfig(prefix="/ops", metrics=False)
    workers.hand_off(Doubler, limits, ops, "s3cret", serving=(2, [("http", "http://h:1")]))
    assert os.environ[workers.HANDLER_ENV] == f"{__name__}:Doubler"
    assert json.loads(os.environ[workers.LIMITS_ENV])["max_body_size"] == 1234
    assert os.environ[TOKEN_ENV] == "s3cret"
    assert workers.handed_ops() == ops
    assert workers._handed_limits() == limits
    assert json.loads(os.environ[workers.SERVING_ENV]) == {
        "workers": 2,
        "listeners": [["http", "http://h:1"]],
    }
    assert workers.NATIVE_ENV not in os.environ


def test_nothing_handed_means_the_defaults_and_the_example() -> None:
    assert workers.handed_ops() is None
    assert workers._handed_limits() == DEFAULT_LIMITS
    app = workers.from_env()
    assert app.limits == DEFAULT_LIMITS and app.ops == DEFAULT_OPS
    assert call(app, [4], "/xdata").json() == [1, 2, 3, 4]  # the example handler


def test_a_worker_builds_the_app_the_parent_described() -> None:
    workers.hand_off(
        Doubler,
        Limits(handler_threads=2),
        DEFAULT_OPS,
        "t0k",
        serving=(3, [("http", "http://127.0.0.1:9")]),
    )
    app = workers.from_env()
    assert app.limits.handler_threads == 2
    assert call(app, 21).json() == 42
    assert app.console is not None and app.console._workers == 3


def test_a_handler_that_cannot_be_imported_by_name_is_refused() -> None:
    def local(resource: str, payload: Any) -> Any:
        return payload

    with pytest.raises(HandlerLoadError, match="MODULE:ATTR"):
        workers.hand_off(local, DEFAULT_LIMITS, DEFAULT_OPS, None)


def test_the_native_listener_starts_and_stops_with_the_app() -> None:
    # As the parent does: the port is bound (port 0, read back) with SO_REUSEPORT
    # and held, not listening, while the workers' listeners come and go.
    with bind_socket("127.0.0.1", 0, reuse_port=True, listen=False) as reserved:
        port = reserved.getsockname()[1]
        workers.hand_off(
            Doubler, DEFAULT_LIMITS, DEFAULT_OPS, None, native=("127.0.0.1", port, None)
        )
        assert json.loads(os.environ[workers.NATIVE_ENV]) == {
            "host": "127.0.0.1",
            "port": port,
            "tls": None,
        }
        app = workers.from_env()

        async def main() -> Any:
            async with app.router.lifespan_context(app):
                return await asyncio.to_thread(_native_call, port)

        assert asyncio.run(main()) == 10
        with pytest.raises(Exception):  # noqa: B017 - refused: the listener stopped with the app
            _native_call(port)


def _native_call(port: int) -> Any:
    with RawDataClient(port, timeout=10, connect_timeout=5) as client:
        return client.send("/x", 5)
