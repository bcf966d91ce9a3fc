"""The request dict and the answer on the wire, from curl, httpx and http.client."""

from __future__ import annotations

import asyncio
import http.client
import subprocess
from typing import Any

import httpx
import pytest

from dataserve.callback import DataStream, callback_app
from tests.conftest import need_tool

from .conftest import Recorder, Register, ok


def curl(*args: str) -> tuple[str, str, int, int]:
    """Run curl; return (body, local ip, local port, status)."""
    out = subprocess.run(
        [need_tool("curl"), "-sS", "-w", "\n%{local_ip} %{local_port} %{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    body, tail = out.rsplit("\n", 1)
    ip, port, status = tail.split()
    return body, ip, int(port), int(status)


def test_request_dict_from_curl_field_by_field(register: Register) -> None:
    recorder = Recorder(lambda request: ok("done"))
    httpdid, port = register(recorder)
    body, ip, local_port, status = curl(
        "-X",
        "POST",
        "-H",
        "Content-Type: application/x-xmlrpc-data",
        "-H",
        "X-Twice: 1",
        "-H",
        "X-Twice: 2",
        "--data-binary",
        "<call/>",
        f"http://127.0.0.1:{port}/some/pa%20th?foo=bar&baz",
    )
    assert (status, body) == (200, "done")
    request = recorder.next()
    assert set(request) == {
        "verb",
        "path",
        "querystr",
        "querydict",
        "version",
        "datastream",
        "headers",
        "httpdid",
        "remoteipstr",
        "remoteportnum",
        "body",  # added by the recorder
    }
    assert request["verb"] == "POST"
    assert request["path"] == "/some/pa th"
    assert request["querystr"] == "foo=bar&baz"
    assert request["querydict"] == {"foo": "bar", "baz": None}
    assert request["version"] == "1.1"
    assert isinstance(request["datastream"], DataStream)
    assert request["body"] == b"<call/>"
    headers = request["headers"]
    assert isinstance(headers, dict)
    assert headers["User-Agent"].startswith("curl/")
    assert dict(headers) == {
        "Host": f"127.0.0.1:{port}",
        "User-Agent": headers["User-Agent"],
        "Accept": "*/*",
        "Content-Type": "application/x-xmlrpc-data",
        "X-Twice": "1, 2",
        "Content-Length": "7",
    }
    assert headers["content-type"] == "application/x-xmlrpc-data"
    assert request["httpdid"] == httpdid
    assert request["remoteipstr"] == ip == "127.0.0.1"
    assert request["remoteportnum"] == local_port


def test_request_dict_from_curl_http_1_0(register: Register) -> None:
    recorder = Recorder()
    _, port = register(recorder)
    _, _, _, status = curl("--http1.0", f"http://127.0.0.1:{port}/")
    assert status == 200
    request = recorder.next()
    assert (request["verb"], request["path"], request["version"]) == ("GET", "/", "1.0")
    assert (request["querystr"], request["querydict"], request["body"]) == ("", {}, b"")


def test_request_dict_from_httpx_field_by_field(register: Register) -> None:
    recorder = Recorder()
    httpdid, port = register(recorder)
    with httpx.Client() as client:
        r = client.put(
            f"http://127.0.0.1:{port}/x/y",
            params=[("a", "1"), ("a", "2"), ("sp", "x y"), ("e", "")],
            content=b"\x00\x01payload",
            headers={"X-Custom": "Value", "Cookie": "k=v"},
        )
        local = r.extensions["network_stream"].get_extra_info("client_addr")
    assert r.status_code == 200 and r.text == "ok"
    request = recorder.next()
    assert request["verb"] == "PUT"
    assert request["path"] == "/x/y"
    assert request["querystr"] == "a=1&a=2&sp=x+y&e="
    assert request["querydict"] == {"a": "2", "sp": "x y", "e": ""}
    assert request["version"] == "1.1"
    assert request["body"] == b"\x00\x01payload"
    assert dict(request["headers"]) == {
        "Host": f"127.0.0.1:{port}",
        "Accept": "*/*",
        "Accept-Encoding": request["headers"]["Accept-Encoding"],
        "Connection": "keep-alive",
        "User-Agent": f"python-httpx/{httpx.__version__}",
        "X-Custom": "Value",
        "Cookie": "k=v",
        "Content-Length": "9",
    }
    assert request["httpdid"] == httpdid
    assert (request["remoteipstr"], request["remoteportnum"]) == tuple(local)


@pytest.mark.parametrize(
    ("query", "querydict"),
    [
        ("a=1&a=2", {"a": "2"}),
        ("e=&n&=v", {"e": "", "n": None, "": "v"}),
        ("s=%20x%20&p=a+b&q=a%2Bb", {"s": " x ", "p": "a b", "q": "a+b"}),
        ("u=%C3%A9t%C3%A9&bad=%FF", {"u": "été", "bad": "\ufffd"}),
        ("&&x&", {"x": None}),
    ],
)
def test_query_parsing_over_the_wire(register: Register, query: str, querydict: Any) -> None:
    recorder = Recorder()
    _, port = register(recorder)
    curl(f"http://127.0.0.1:{port}/q?{query}")
    request = recorder.next()
    assert request["querystr"] == query  # exactly as sent, not decoded
    assert request["querydict"] == querydict


def test_head_gets_the_headers_and_no_body(register: Register) -> None:
    recorder = Recorder(lambda request: ok("hello", **{"X-Verb": request["verb"]}))
    _, port = register(recorder)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("HEAD", "/file")
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("content-length") == "5"
        assert r.getheader("x-verb") == "HEAD"
        assert r.read() == b""
        # Had a body been sent, it would be read as the next response.
        conn.request("GET", "/file")
        r = conn.getresponse()
        assert (r.status, r.read(), r.getheader("x-verb")) == (200, b"hello", "GET")
    finally:
        conn.close()
    assert recorder.next()["verb"] == "HEAD"
    assert recorder.next()["verb"] == "GET"


def test_head_from_curl(register: Register) -> None:
    _, port = register(Recorder(lambda request: ok("four")))
    out = subprocess.run(
        [need_tool("curl"), "-sS", "-I", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "content-length: 4" in lines


def test_the_response_dict_reaches_the_client(register: Register) -> None:
    def callback(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "1.1",
            "statuscode": 418,
            "statusmsg": "Short And Stout",
            "headers": {"X-Header-Foo": "Bar", "Content-Type": "application/octet-stream"},
            "message": b"\x00\xff\x10",
        }

    _, port = register(callback)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 418
        assert r.reason == "Short And Stout"  # statusmsg is the reason phrase
        assert r.getheader("x-header-foo") == "Bar"
        assert r.getheader("content-type") == "application/octet-stream"
        assert r.read() == b"\x00\xff\x10"
        assert not r.will_close
    finally:
        conn.close()


def test_a_str_message_is_sent_as_utf8(register: Register) -> None:
    _, port = register(lambda request: ok("héllo ✓"))
    r = httpx.get(f"http://127.0.0.1:{port}/")
    assert r.content == "héllo ✓".encode()
    assert r.headers["content-length"] == str(len("héllo ✓".encode()))
    assert "content-type" not in r.headers  # none unless the callback sets one


@pytest.mark.parametrize("version", ["1.0", "0.9"])
def test_an_http_1_0_response_closes_the_connection(register: Register, version: str) -> None:
    _, port = register(lambda request: {**ok(), "version": version})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.getheader("connection") == "close" and r.will_close
        assert r.read() == b"ok"
    finally:
        conn.close()


def test_an_async_callback_reads_the_body_with_aread(register: Register) -> None:
    seen: dict[str, Any] = {}

    async def callback(request: dict[str, Any]) -> dict[str, Any]:
        stream = request["datastream"]
        try:
            stream.read()
        except RuntimeError as exc:  # read() would block the loop it runs on
            seen["read_error"] = str(exc)
        first = await stream.aread(3)
        rest = await stream.aread()
        seen["request"] = {k: v for k, v in request.items() if k != "datastream"}
        return ok(f"{first!r} {rest!r} {await stream.aread()!r}")

    httpdid, port = register(callback)
    r = httpx.post(f"http://127.0.0.1:{port}/a?b", content=b"abcdefgh")
    assert r.text == "b'abc' b'defgh' b''"
    assert "use 'await datastream.aread()'" in seen["read_error"]
    request = seen["request"]
    assert (request["verb"], request["path"], request["querydict"]) == ("POST", "/a", {"b": None})
    assert request["httpdid"] == httpdid


def test_the_datastream_is_closed_after_the_callback_returns(register: Register) -> None:
    streams: list[DataStream] = []

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        streams.append(request["datastream"])
        return ok()

    _, port = register(callback)
    assert httpx.post(f"http://127.0.0.1:{port}/", content=b"unread").status_code == 200
    with pytest.raises(ValueError, match="closed datastream"):
        streams[0].read()


def test_callback_app_serves_the_same_way_under_uvicorn(serve: Any) -> None:
    recorder = Recorder(lambda request: ok(str(request["httpdid"])))
    app = callback_app(recorder)
    server = serve(app)
    r = httpx.delete(server.url + "/thing?id=7")
    assert (r.status_code, r.text) == (200, str(app.httpdid))
    request = recorder.next()
    assert (request["verb"], request["path"], request["querydict"]) == (
        "DELETE",
        "/thing",
        {"id": "7"},
    )


def test_callback_app_without_a_server() -> None:
    async def callback(request: dict[str, Any]) -> dict[str, Any]:
        return ok(await request["datastream"].aread())

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=callback_app(callback))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/", content=b"echo")

    r = asyncio.run(main())
    assert (r.status_code, r.content) == (200, b"echo")
