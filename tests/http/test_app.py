"""dataserve.http.app: the ASGI app, driven in process through httpx's ASGI transport.

Its lifespan runs around each test (``lifespan_context``), as a server runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from dataserve.core.errors import BadRequest
from dataserve.core.limits import Limits
from dataserve.http.app import DataEndpoint, DataServeApp, create_app
from dataserve.ops.config import OpsConfig


def handler(resource: str, payload: Any) -> Any:
    if resource == "/none":
        return None
    if resource == "/bad":
        raise BadRequest("not like that")
    if resource == "/boom":
        raise RuntimeError("private detail")
    return {"resource": resource, "payload": payload}


class Client:
    """Synchronous calls into an app whose lifespan runs for as long as the block."""

    def __init__(self, app: DataServeApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        )
        self._lifespan: Any = None

    def _run(self, make: Callable[[], Awaitable[Any]]) -> Any:
        return self.loop.run_until_complete(make())

    def __enter__(self) -> Client:
        self._lifespan = self.app.router.lifespan_context(self.app)
        self._run(self._lifespan.__aenter__)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(lambda: self._lifespan.__aexit__(None, None, None))
            self._run(self.http.aclose)
        finally:
            self.loop.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._run(lambda: self.http.request(method, path, **kwargs))  # type: ignore[no-any-return]

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(create_app(handler)) as c:
        yield c


def test_create_app_builds_a_data_serve_app() -> None:
    app = create_app(handler, handler_threads=3, limits=Limits(max_body_size=1000))
    assert isinstance(app, DataServeApp) and isinstance(app.endpoint, DataEndpoint)
    assert app.limits.handler_threads == 3 and app.limits.max_body_size == 1000


def test_put_and_post_answer_with_the_encoded_value(client: Client) -> None:
    for method in ("PUT", "POST"):
        r = client.request(method, "/xdata", json=[1, 2])
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == {"resource": "/xdata", "payload": [1, 2]}


def test_text_and_bytes_bodies_decode_by_their_media_type(client: Client) -> None:
    r = client.put("/t", content="héllo", headers={"content-type": "text/plain; charset=utf-8"})
    assert r.json()["payload"] == "héllo"
    r = client.put("/none", content=b"\x00", headers={"content-type": "application/octet-stream"})
    assert r.status_code == 404


def test_errors_follow_the_outcome_policy(client: Client) -> None:
    assert client.put("/none", json=1).status_code == 404
    r = client.put("/bad", json=1)
    assert (r.status_code, "not like that" in r.text) == (400, True)
    r = client.put("/boom", json=1)
    assert r.status_code == 500 and "private detail" not in r.text
    r = client.put("/x", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = client.put("/x", content=b"x", headers={"content-type": "application/x-unknown"})
    assert r.status_code == 415


def test_other_methods_are_not_allowed(client: Client) -> None:
    r = client.get("/xdata")
    assert r.status_code == 405
    assert "PUT" in r.headers.get("allow", "")


def test_a_body_over_the_limit_is_413() -> None:
    with Client(create_app(handler, limits=Limits(max_body_size=10))) as c:
        r = c.put("/x", content=b"x" * 11, headers={"content-type": "application/octet-stream"})
        assert r.status_code == 413


def test_a_token_is_required_when_set() -> None:
    with Client(create_app(handler, token="s3cret")) as c:
        assert c.put("/x", json=1).status_code == 401
        assert c.put("/x", json=1, headers={"authorization": "Bearer wrong"}).status_code == 401
        r = c.put("/x", json=1, headers={"authorization": "Bearer s3cret"})
        assert r.status_code == 200


def test_the_ops_routes_answer_under_their_prefix(client: Client) -> None:
    assert client.get("/_dataserve/health").status_code == 200
    assert client.get("/_dataserve/ready").status_code == 200


def test_ops_routes_off_leaves_every_path_to_the_handler() -> None:
    with Client(create_app(handler, ops=OpsConfig(prefix=""))) as c:
        r = c.put("/_dataserve/health", json=1)
        assert r.json()["resource"] == "/_dataserve/health"


def test_readiness_follows_the_lifespan() -> None:
    app = create_app(handler)
    assert not app.readiness.ready
    with Client(app):
        assert app.readiness.ready
    assert not app.readiness.ready  # draining after shutdown
