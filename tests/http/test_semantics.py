"""HTTP semantics on a real uvicorn server: statuses, media types, messages."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from dataserve import Router, create_app
from dataserve.core.limits import Limits
from dataserve.http.server import BackgroundServer

from .conftest import EchoHandler


def put(server: BackgroundServer, path: str, body: bytes, ctype: str | None) -> httpx.Response:
    headers = {"content-type": ctype} if ctype else {}
    return httpx.put(server.url + path, content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "ctype", "reply_type", "reply"),
    [
        (b"hello", "text/plain", "text/plain", b"hello"),
        (b"hello", "text/plain; charset=utf-8", "text/plain", b"hello"),
        (b"[4,5,6]", "application/json", "application/json", b"[4,5,6]"),
        (b"\x00\x01\xff", "application/octet-stream", "application/octet-stream", b"\x00\x01\xff"),
    ],
)
def test_each_media_type_round_trips_with_a_bare_content_type(
    echo_server: BackgroundServer, body: bytes, ctype: str, reply_type: str, reply: bytes
) -> None:
    r = put(echo_server, "/echo", body, ctype)
    assert r.status_code == 200
    # exactly the bare media type: dataserve 0.1 clients compare it verbatim
    assert r.headers["content-type"] == reply_type
    assert r.content == reply


def test_post_works_like_put(echo_server: BackgroundServer) -> None:
    r = httpx.post(echo_server.url + "/echo", json=[1, 2])
    assert r.status_code == 200 and r.json() == [1, 2]


def test_no_body_means_none(echo_server: BackgroundServer) -> None:
    r = httpx.put(echo_server.url + "/none-payload")
    assert r.status_code == 200 and r.json() is True


@pytest.mark.parametrize(
    ("path", "body", "ctype", "status", "message"),
    [
        ("/nope", b"x", "text/plain", 404, "resource '/nope' is not handled"),
        ("/raise", b"x", "text/plain", 500, "the handler raised RuntimeError for /raise"),
        ("/set", b"x", "text/plain", 500, "a value of type set cannot be encoded"),
        ("/echo", b"x", "image/png", 415, "unsupported media type 'image/png'"),
        ("/echo", b"x", "application/x-www-form-urlencoded", 415, "unsupported media type"),
        ("/echo", b"[1,", "application/json", 400, "malformed JSON"),
        ("/echo", b"[" * 100_000, "application/json", 400, "malformed JSON"),
        ("/echo", b"\xc3\x28", "text/plain", 400, "not valid utf-8"),
        ("/echo", b"x", "text/plain; charset=klingon", 415, "charset 'klingon'"),
    ],
)
def test_errors_have_a_status_and_a_message(
    echo_server: BackgroundServer, path: str, body: bytes, ctype: str, status: int, message: str
) -> None:
    r = put(echo_server, path, body, ctype)
    assert r.status_code == status
    assert r.headers["content-type"] == "text/plain"
    assert message in r.text
    # and the server keeps serving
    assert put(echo_server, "/echo", b"ok", "text/plain").text == "ok"


def test_a_raising_handler_is_logged(
    echo_server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="dataserve.app"):
        assert put(echo_server, "/raise", b"", "text/plain").status_code == 500
    assert any("handler raised for /raise" in r.message for r in caplog.records)
    assert any(r.exc_info and "handler failure" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(echo_server: BackgroundServer, method: str) -> None:
    r = httpx.request(method, echo_server.url + "/echo")
    assert r.status_code == 405
    assert r.headers["allow"] == "PUT, POST"
    if method != "HEAD":
        assert f"method {method} is not allowed" in r.text


def test_body_over_the_limit_is_refused_from_content_length(serve: Any) -> None:
    server = serve(create_app(EchoHandler, limits=Limits(max_body_size=1000)))
    r = put(server, "/echo", b"x" * 1001, "application/octet-stream")
    assert r.status_code == 413
    assert "1001 bytes is over the limit of 1000 bytes" in r.text
    assert r.headers["connection"] == "close"
    assert put(server, "/echo", b"x" * 1000, "application/octet-stream").status_code == 200


def test_chunked_bodies_are_accepted_and_limited_while_streaming(serve: Any) -> None:
    server = serve(create_app(EchoHandler, limits=Limits(max_body_size=100_000)))

    def chunks(n: int, size: int) -> Any:
        for _ in range(n):
            yield b"a" * size

    r = httpx.put(
        server.url + "/echo",
        content=chunks(10, 1000),
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 200 and r.content == b"a" * 10_000
    r = httpx.put(
        server.url + "/echo",
        content=chunks(300, 1000),
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 413
    assert "over the limit of 100000 bytes" in r.text


def test_router_app_with_parameters(serve: Any) -> None:
    router: Router[Any] = Router()

    @router.route("/scale/{factor}")
    async def scale(payload: list[float], factor: str) -> list[float]:
        return [x * float(factor) for x in payload]

    server = serve(create_app(router))
    r = httpx.put(server.url + "/scale/2", json=[1, 2])
    assert r.json() == [2.0, 4.0]
    assert httpx.put(server.url + "/other", json=[1]).status_code == 404


def test_a_blocking_def_handler_does_not_stall_other_requests(serve: Any) -> None:
    release = threading.Event()
    entered = threading.Event()

    class Slow:
        def handle_request(self, resource: str, payload: Any) -> Any:
            if resource == "/block":
                entered.set()
                release.wait(20)
                return "released"
            return None

    class Fast:
        async def handle_request(self, resource: str, payload: Any) -> Any:
            return "fast"

    # One app, a blocking def handler; uvicorn keeps answering other
    # connections (here: 404s decided on the loop) while it blocks.
    slow = serve(create_app(Slow()))
    fast = serve(create_app(Fast()))
    result: dict[str, Any] = {}

    def call_blocked() -> None:
        result["r"] = httpx.put(slow.url + "/block", timeout=30)

    t = threading.Thread(target=call_blocked)
    t.start()
    assert entered.wait(10)
    # the same server still accepts and answers while its handler thread is busy
    assert httpx.get(slow.url + "/anything").status_code == 405  # answered on the loop
    assert httpx.put(fast.url + "/x").text == "fast"
    release.set()
    t.join(20)
    assert result["r"].text == "released"


def test_handler_threads_runs_def_handlers_concurrently(serve: Any) -> None:
    n = 8
    barrier = threading.Barrier(n, timeout=20)

    def handler(resource: str, payload: Any) -> Any:
        barrier.wait()  # passes only when n handlers run at once
        return "ok"

    server = serve(create_app(handler, handler_threads=n))

    async def main() -> list[str]:
        async with httpx.AsyncClient(timeout=30) as client:
            rs = await asyncio.gather(*(client.put(server.url + "/x") for _ in range(n)))
        return [r.text for r in rs]

    assert asyncio.run(main()) == ["ok"] * n
