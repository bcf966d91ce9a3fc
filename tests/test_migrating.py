"""docs/migrating.md: its code runs, and the differences it names hold against a real server."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

import dataserve
from dataserve import HTTPDataClient, create_app
from tests.conftest import ROOT
from tests.tcpy_pyts.helpers import refused_port

TEXT = (ROOT / "docs" / "migrating.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def test_the_readme_links_the_page() -> None:
    assert "docs/migrating.md" in (ROOT / "README.md").read_text()


def test_send_or_none_gives_the_original_contract_back(serve: Any) -> None:
    namespace: dict[str, Any] = {}
    exec(BLOCKS[0], namespace)  # the page's helper, as written
    send_or_none = namespace["send_or_none"]

    def handler(resource: str, payload: Any) -> Any:
        return {"got": payload} if resource == "/known" else None

    server = serve(create_app(handler))
    with HTTPDataClient(server.port) as client:
        assert send_or_none(client, "/known", [1]) == {"got": [1]}
        assert send_or_none(client, "/unknown", [1]) is None  # 404: NotHandled
        assert send_or_none(client, "/known") == {"got": ""}  # None goes as empty text
        # A value JSON cannot carry is refused, not sent as NaN (0.1.0 sent it).
        with pytest.raises(dataserve.EncodeError):
            client.send("/known", float("nan"))
    with refused_port() as port, HTTPDataClient(port) as client:
        assert send_or_none(client, "/known", 1) is None  # ConnectError


def test_the_server_differences_the_page_names(serve: Any) -> None:
    seen: list[tuple[str, Any]] = []

    def handler(resource: str, payload: Any) -> Any:
        seen.append((resource, payload))
        if resource == "/boom":
            raise KeyError("secret")
        return None if resource == "/none" else [1, 2, 3]

    server = serve(create_app(handler))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.put("/a%20b?q=1", content=b"hi", headers={"content-type": "text/plain"})
        assert (r.status_code, r.content) == (200, b"[1,2,3]")  # compact JSON
        assert seen[-1] == ("/a b", "hi")  # percent-decoded, query left out
        assert (
            http.put("/none", content=b"x", headers={"content-type": "text/plain"}).status_code
            == 404
        )
        assert (
            http.put("/x", content=b"x", headers={"content-type": "application/xml"}).status_code
            == 415
        )
        r = http.put("/x", content=b"x", headers={"content-type": "text/plain; charset=utf-8"})
        assert r.status_code == 200
        r = http.put("/boom", content=b"x", headers={"content-type": "text/plain"})
        assert (r.status_code, r.text) == (
            500,
            "the handler raised KeyError for /boom (see the server log)",
        )
        assert (
            http.post("/x", content=b"x", headers={"content-type": "text/plain"}).status_code == 200
        )
        assert http.head("/x").status_code == 405
        r = http.put("/x", content=b"[NaN]", headers={"content-type": "application/json"})
        assert r.status_code == 400


def test_one_handler_instance_serves_every_request(serve: Any) -> None:
    made: list[Any] = []

    class Counting(dataserve.HTTPDataHandler):
        def __init__(self) -> None:
            made.append(self)
            self.calls = 0

        def handle_request(self, resource: str, payload: Any) -> Any:
            self.calls += 1  # state on self lasts (the original made one object per request)
            return self.calls

    server = serve(create_app(Counting))
    with HTTPDataClient(server.port) as client:
        assert [client.send("/x", "a") for _ in range(3)] == [1, 2, 3]
    assert len(made) == 1
