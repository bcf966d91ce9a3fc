"""dataserve.callback.app: the callback's ASGI app, driven in process through httpx.

Its lifespan runs around each test (``lifespan_context``), as a server runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from dataserve.callback.app import CallbackApp, CallbackEndpoint
from dataserve.core.errors import BadRequest, LimitExceeded
from dataserve.core.limits import Limits

from .conftest import ok


def run(
    cbfunc: Callable[..., Any], test: Callable[[httpx.AsyncClient], Any], **limits: Any
) -> None:
    app = CallbackApp(cbfunc, httpdid=7, limits=Limits(**limits))
    assert isinstance(app.endpoint, CallbackEndpoint) and app.httpdid == 7

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4567))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await test(client)

    asyncio.run(main())


def test_the_request_dict_the_callback_sees() -> None:
    seen: list[dict[str, Any]] = []

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        request = dict(request)
        request["body"] = request.pop("datastream").read()
        seen.append(request)
        return ok("done", **{"X-Tag": "t"})

    async def test(client: httpx.AsyncClient) -> None:
        r = await client.post("/a/b?x=1&y=2", content=b"payload", headers={"X-In": "v"})
        assert (r.status_code, r.text, r.headers["x-tag"]) == (200, "done", "t")

    run(callback, test)
    (request,) = seen
    assert request["verb"] == "POST" and request["path"] == "/a/b"
    assert request["querystr"] == "x=1&y=2" and request["httpdid"] == 7
    assert request["body"] == b"payload" and request["version"] == "1.1"
    assert (request["remoteipstr"], request["remoteportnum"]) == ("10.1.2.3", 4567)
    assert any(str(name).lower() == "x-in" for name in request["headers"])


def test_an_async_callback_reads_with_aread() -> None:
    async def callback(request: dict[str, Any]) -> dict[str, Any]:
        body = await request["datastream"].aread()
        return ok(body[::-1])

    async def test(client: httpx.AsyncClient) -> None:
        r = await client.put("/", content=b"abc")
        assert r.content == b"cba"

    run(callback, test)


def test_failures_follow_the_outcome_policy() -> None:
    def callback(request: dict[str, Any]) -> Any:
        path = request["path"]
        if path == "/raise":
            raise KeyError("secret")
        if path == "/bad":
            raise BadRequest("no such thing")
        return {"statuscode": "not a number"}

    async def test(client: httpx.AsyncClient) -> None:
        r = await client.get("/raise")
        assert r.status_code == 500 and "KeyError" in r.text and "secret" not in r.text
        r = await client.get("/bad")
        assert (r.status_code, "no such thing" in r.text) == (400, True)
        r = await client.get("/invalid")
        assert r.status_code == 500 and "invalid response from the callback" in r.text

    run(callback, test)


def test_a_body_over_the_limit_is_413_and_the_callback_is_not_called() -> None:
    called: list[Any] = []

    def callback(request: dict[str, Any]) -> Any:
        called.append(request)
        return ok()

    async def test(client: httpx.AsyncClient) -> None:
        r = await client.put("/", content=b"x" * 20)
        assert r.status_code == 413 and r.headers.get("connection") == "close"

    run(callback, test, max_body_size=10)
    assert called == []


def test_a_body_read_past_the_limit_is_413_whatever_the_callback_returns() -> None:
    def callback(request: dict[str, Any]) -> Any:
        with pytest.raises(LimitExceeded):  # the callback swallows it; the answer stays 413
            request["datastream"].read()
        return ok("ignored")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 5  # no Content-Length: the limit is found while reading

    async def test(client: httpx.AsyncClient) -> None:
        r = await client.put("/", content=chunks())
        assert r.status_code == 413

    run(callback, test, max_body_size=10)


def test_a_callback_past_its_deadline_is_504() -> None:
    async def callback(request: dict[str, Any]) -> Any:
        await asyncio.Event().wait()

    async def test(client: httpx.AsyncClient) -> None:
        r = await client.get("/")
        assert r.status_code == 504

    run(callback, test, handler_timeout=0.1)


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_head_answers_carry_no_body(method: str) -> None:
    def callback(request: dict[str, Any]) -> Any:
        return ok("body text")

    async def test(client: httpx.AsyncClient) -> None:
        r = await client.request(method, "/")
        assert r.status_code == 200
        assert r.content == (b"" if method == "HEAD" else b"body text")

    run(callback, test)
