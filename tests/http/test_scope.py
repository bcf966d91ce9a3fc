"""dataserve.http.scope: what each request's ASGI scope carries."""

from __future__ import annotations

from dataserve.http.scope import Scopes

ASGI = {"version": "3.0", "spec_version": "2.3"}


def scopes(root_path: str = "") -> Scopes:
    s = Scopes(app_state={"seen": 0}, root_path=root_path, asgi=ASGI)
    s.connected(("127.0.0.1", 8000), ("127.0.0.1", 50000), "https")
    return s


def test_a_scope_carries_the_connection_and_the_request_line() -> None:
    s = scopes()
    headers = [(b"host", b"example")]
    scope = s.begin(headers)
    s.complete(scope, b"PUT", "1.1", b"/a%20b?x=1")
    assert scope == {
        "type": "http",
        "asgi": ASGI,
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "https",
        "root_path": "",
        "headers": headers,
        "state": {"seen": 0},
        "method": "PUT",
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1",
    }
    assert scope["headers"] is headers  # the parser fills it as the headers arrive


def test_the_root_path_comes_first_and_http_1_0_is_said() -> None:
    s = scopes("/api")
    scope = s.begin([])
    s.complete(scope, b"POST", "1.0", b"/x")
    assert scope["path"] == "/api/x" and scope["raw_path"] == b"/api/x"
    assert scope["http_version"] == "1.0" and scope["query_string"] == b""


def test_each_request_has_its_own_copy_of_the_state() -> None:
    s = scopes()
    first, second = s.begin([]), s.begin([])
    first["state"]["seen"] = 1
    assert second["state"] == {"seen": 0}
