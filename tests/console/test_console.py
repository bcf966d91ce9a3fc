"""The console's routes over HTTP: the page and its files, the stats, the token, GET /."""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import dataserve
from dataserve import Limits, create_app
from dataserve.ops import OpsConfig
from dataserve.ops.console import CONTENT_SECURITY_POLICY
from tests.http.handlers import Echo

STATIC = Path(dataserve.__file__).parent / "ops" / "static"


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_the_page_and_its_files_carry_the_security_headers(serve: Any) -> None:
    server = serve(create_app(Echo))
    with httpx.Client(base_url=server.url) as http:
        page = http.get("/_dataserve/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.text == (STATIC / "console.html").read_text()
        for name, media_type in [
            ("console.js", "text/javascript; charset=utf-8"),
            ("console.css", "text/css; charset=utf-8"),
            ("favicon.svg", "image/svg+xml"),
        ]:
            r = http.get(f"/_dataserve/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"] == media_type
            assert r.content == (STATIC / name).read_bytes()
        for r in [page, http.get("/_dataserve/stats"), http.get("/_dataserve/static/console.js")]:
            assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store"
            assert r.headers["x-frame-options"] == "DENY"
        # Only the shipped files, by name: nothing else of the package.
        for name in ["console.py", "..%2Fconsole.py", "console.html", "nothing.js"]:
            assert http.get(f"/_dataserve/static/{name}").status_code == 404
        assert http.get("/_dataserve", follow_redirects=False).headers["location"] == (
            "/_dataserve/"
        )


def test_the_policy_allows_this_server_only_and_no_inline_code() -> None:
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "img-src", "connect-src"):
        assert policy[directive] == "'self'"  # no 'unsafe-inline', no other origin
    assert policy["frame-ancestors"] == policy["base-uri"] == policy["form-action"] == "'none'"


def test_the_files_name_no_other_origin_and_hold_no_inline_code() -> None:
    html = (STATIC / "console.html").read_text()
    # Scripts and styles come from files (the policy would refuse inline ones).
    assert re.findall(r"<script[^>]*>", html) == ['<script src="static/console.js" defer>']
    assert "<style" not in html and not re.search(r"\s(style|on[a-z]+)=", html)
    for name in ["console.html", "console.css", "console.js", "favicon.svg"]:
        text = (STATIC / name).read_text()
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
        assert urls in ([], ["http://www.w3.org/2000/svg"]), (name, urls)  # a namespace
        assert "@import" not in text and "url(" not in text
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text


def test_get_slash_goes_to_the_console_and_other_gets_point_at_it(serve: Any) -> None:
    server = serve(create_app(Echo))
    with httpx.Client(base_url=server.url, follow_redirects=False) as http:
        for method in ("GET", "HEAD"):
            r = http.request(method, "/")
            assert r.status_code == 307 and r.headers["location"] == "/_dataserve/"
        r = http.get("/", follow_redirects=True)
        assert r.status_code == 200 and "<title>dataserve</title>" in r.text
        r = http.get("/xdata")
        assert r.status_code == 405 and r.headers["allow"] == "PUT, POST"
        assert r.text == (
            "method GET is not allowed: call a resource with PUT or POST; "
            "this server's console is at /_dataserve/"
        )
        assert http.delete("/").status_code == 405
        assert http.put("/", json=[1]).json() == [1]  # PUT / is the handler's, as ever


@pytest.mark.parametrize(
    "ops", [OpsConfig(console=False), OpsConfig(prefix="")], ids=["console-off", "no-routes"]
)
def test_without_the_console_get_is_a_plain_405(serve: Any, ops: OpsConfig) -> None:
    server = serve(create_app(Echo, ops=ops))
    r = httpx.get(server.url + "/", follow_redirects=False)
    assert r.status_code == 405
    assert r.text == "method GET is not allowed: call a resource with PUT or POST"
    if ops.prefix:
        assert httpx.get(server.url + "/_dataserve/").status_code == 404
        assert httpx.get(server.url + "/_dataserve/stats").status_code == 404


def test_a_moved_prefix_moves_the_console(serve: Any) -> None:
    server = serve(create_app(Echo, ops=OpsConfig(prefix="/ops")))
    r = httpx.get(server.url + "/", follow_redirects=False)
    assert r.headers["location"] == "/ops/"
    assert "is at /ops/" in httpx.get(server.url + "/x").text
    assert httpx.get(server.url + "/ops/stats").json()["server"]["handler"]["name"] == "Echo"


def test_the_stats_describe_the_server(serve: Any) -> None:
    limits = Limits(handler_threads=3, max_body_size=1 << 20)
    server = serve(create_app(Echo, limits=limits))
    s = httpx.get(server.url + "/_dataserve/stats").json()
    info = s["server"]
    assert info["version"] == dataserve.__version__
    assert info["handler"] == {"name": "Echo", "module": "tests.http.handlers", "kind": "class"}
    assert info["workers"] == 1 and info["state"] == "ready"
    # Nobody told the app what listens: the address the request came in on.
    assert info["listeners"] == [{"transport": "http", "address": server.url}]
    assert info["limits"] == dataclasses.asdict(limits)
    assert (info["metrics"], info["token_required"]) == (True, False)
    assert 0 <= info["uptime"] < 600
    assert s["handler_threads"] == {"limit": 3, "busy": 0, "queued": 0}
    assert s["in_flight"]["requests"] == 0
    for name in ("requests_per_second", "errors_per_second", "bytes_in", "bytes_out"):
        assert isinstance(s[name], (int, float)), name
    assert set(s["latency"]) == {"p50", "p99"}
    assert isinstance(s["history"], list)


def test_the_request_counters_move_at_once(serve: Any) -> None:
    server = serve(create_app(Echo))
    with httpx.Client(base_url=server.url) as http:
        before = http.get("/_dataserve/stats").json()
        assert http.put("/counted", json={"a": 1}).json() == {"a": 1}
        assert http.put("/counted", content=b"abc").content == b"abc"
        assert http.get("/counted").status_code == 405
        after = http.get("/_dataserve/stats").json()
    # The metrics are per process, shared with other apps it runs: compare.
    assert after["requests"] - before["requests"] >= 3
    # Answered once, a resource keeps its label for every status: 2 PUTs, 1 GET.
    assert after["by_resource"]["/counted"] - before["by_resource"].get("/counted", 0) == 3
    assert after["by_status"]["405"] - before["by_status"].get("405", 0) >= 1
    assert after["errors"] > before["errors"]
    assert after["bytes_in"] - before["bytes_in"] >= len('{"a":1}') + 3
    assert after["by_transport"]["http"] > before["by_transport"]["http"]
    assert after["open_connections"] >= 1


def test_since_must_be_a_time(serve: Any) -> None:
    server = serve(create_app(Echo))
    for bad in ("abc", "nan", "inf"):
        r = httpx.get(server.url + "/_dataserve/stats", params={"since": bad})
        assert r.status_code == 400 and "since must be a time" in r.text
    r = httpx.get(server.url + "/_dataserve/stats", params={"since": "1e12"})
    assert r.status_code == 200 and r.json()["history"] == []


def test_without_metrics_the_stats_say_so(serve: Any) -> None:
    server = serve(create_app(Echo, ops=OpsConfig(metrics=False)))
    s = httpx.get(server.url + "/_dataserve/stats").json()
    assert s["server"]["metrics"] is False
    assert s["requests"] is None and s["history"] == []
    assert s["handler_threads"]["limit"] == 1


def test_the_console_is_behind_the_token(serve: Any) -> None:
    server = serve(create_app(Echo, token="s3cret"))
    with httpx.Client(base_url=server.url, follow_redirects=False) as http:
        for path in ["/_dataserve/", "/_dataserve/stats", "/_dataserve/static/console.js"]:
            for headers in [
                {},
                {"authorization": "Bearer wrong"},
                basic("anyone", "wrong"),
                basic("s3cret", ""),  # the token is the password, not the user
                {"authorization": "Basic !!!"},
            ]:
                r = http.get(path, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.headers.get_list("www-authenticate") == [
                    'Bearer realm="dataserve"',
                    'Basic realm="dataserve", charset="UTF-8"',
                ]
                assert "s3cret" not in r.text
            assert http.get(path, headers={"authorization": "Bearer s3cret"}).status_code == 200
            assert http.get(path, headers=basic("ops", "s3cret")).status_code == 200
            assert http.get(path, headers=basic("", "s3cret")).status_code == 200
            two = [("authorization", "Bearer s3cret"), ("authorization", "Bearer s3cret")]
            assert http.get(path, headers=two).status_code == 401
        s = http.get("/_dataserve/stats", headers={"authorization": "Bearer s3cret"}).json()
        assert s["server"]["token_required"] is True
        assert "s3cret" not in str(s)
        # What reveals nothing stays open: the way to the page, health, readiness.
        assert http.get("/").headers["location"] == "/_dataserve/"
        assert http.get("/_dataserve").status_code == 307
        assert http.get("/_dataserve/health").status_code == 200
        # Data requests still take the token as Bearer only.
        assert http.put("/echo", json=1, headers=basic("", "s3cret")).status_code == 401
        assert http.put("/echo", json=1, headers={"authorization": "Bearer s3cret"}).json() == 1


def test_the_handler_is_described_by_what_was_written() -> None:
    from dataserve import Router
    from dataserve.core.handler import resolve_handler
    from dataserve.ops.console import describe_handler

    def scale(resource: str, payload: Any) -> Any:
        return payload

    where = {"module": "tests.http.handlers", "name": "Echo", "kind": "class"}
    assert describe_handler(Echo) == where
    assert describe_handler(Echo()) == where
    assert describe_handler(resolve_handler(Echo)) == where  # a bound handle_request
    assert describe_handler(scale)["kind"] == "function"
    assert describe_handler(scale)["name"].endswith("scale")
    assert describe_handler(Router())["kind"] == "router"
    assert describe_handler("pkg.mod:Handler") == {
        "name": "Handler", "module": "pkg.mod", "kind": "name",
    }  # fmt: skip


def test_the_readme_lists_every_field_of_the_stats(serve: Any) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The console", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| ([^|]+) \| ([^\n]+) \|$", section, re.M))
    cells = [cell for cell in rows if cell not in ("field", "---")]
    documented = {name.strip(" `") for cell in cells for name in cell.split(",")}
    server = serve(create_app(Echo))
    s = httpx.get(server.url + "/_dataserve/stats").json()
    assert documented == set(s)
    server_row = rows["`server`"]
    assert all(f"`{key}`" in server_row for key in s["server"]), server_row
    assert all(f"`{key}`" in rows["`in_flight`"] for key in s["in_flight"])
    assert all(f"`{key}`" in rows["`handler_threads`"] for key in s["handler_threads"])
