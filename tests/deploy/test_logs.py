"""Logs: access lines off by default, uvicorn-style text or JSON when on."""

from __future__ import annotations

import json
import re
import socket

import httpx

from tests.conftest import ROOT

from .helpers import finish, serve_process

ACCESS = re.compile(
    r'^INFO: +127\.0\.0\.1:\d+ - "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.1" '
    r"(?P<status>\d{3}) (?P<phrase>[A-Za-z ]+) (?P<bytes>\d+)B (?P<ms>\d+\.\d\d)ms (?P<id>\S+)$"
)


def test_no_access_lines_by_default() -> None:
    server = serve_process("handler:Handler", "--port", "0")
    with httpx.Client(base_url=server.url) as http:
        for _ in range(5):
            assert http.put("/echo", json=1).status_code == 200
    status, out, err = finish(server)
    assert status == 0
    assert out.splitlines() == [server.lines[0].rstrip("\n")]  # the banner only
    # lifecycle messages go through logging, to stderr
    assert "Application startup complete." in err
    assert "Finished server process" in err


def test_access_log_writes_one_uvicorn_style_line_per_request() -> None:
    server = serve_process("handler:Handler", "--port", "0", "--access-log")
    with httpx.Client(base_url=server.url) as http:
        r1 = http.put("/echo", json={"a": 1}, headers={"x-request-id": "req-1"})
        r2 = http.put("/missing", json=1)
        r3 = http.get("/echo?x=1")
    # a path with an escape sequence cannot colour or forge a log line
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"PUT /a%1b[31m%0aX HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while sock.recv(65536):
            pass
    status, out, _ = finish(server)
    assert status == 0
    lines = [line for line in out.splitlines() if line.startswith("INFO:")]
    assert len(lines) == 4, out
    parsed = [ACCESS.match(line) for line in lines]
    assert all(parsed), lines
    first, second, third, fourth = (m.groupdict() for m in parsed if m)
    assert first["method"] == "PUT" and first["path"] == "/echo"
    assert (first["status"], first["phrase"]) == ("200", "OK")
    assert int(first["bytes"]) == len(r1.content) and first["id"] == "req-1"
    assert (second["status"], second["id"]) == ("404", r2.headers["x-request-id"])
    assert (third["method"], third["path"], third["status"]) == ("GET", "/echo?x=1", "405")
    assert third["id"] == r3.headers["x-request-id"]
    assert fourth["path"] == "/a%1B%5B31m%0AX"
    assert "\x1b" not in out


def test_json_logs_are_one_object_per_line_with_the_request_fields() -> None:
    server = serve_process("handler:Handler", "--port", "0", "--access-log", "--log-format", "json")
    banner = json.loads(server.lines[0])
    assert banner["url"] == server.url and banner["level"] == "INFO"
    with httpx.Client(base_url=server.url) as http:
        r = http.put("/echo", content=b"12345", headers={"x-request-id": "json-1"})
        assert r.content == b"12345"
        http.put("/boom-not-handled", json=1)
    status, out, err = finish(server)
    assert status == 0
    records = [json.loads(line) for line in out.splitlines()]  # every line is JSON
    access = [r for r in records if r["logger"] == "dataserve.access"]
    assert len(access) == 2
    first = access[0]
    assert first["method"] == "PUT" and first["resource"] == "/echo"
    assert first["status"] == 200 and first["bytes"] == 5 and first["bytes_in"] == 5
    assert first["request_id"] == "json-1"
    assert 0 < first["duration"] < 30
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", first["time"])
    assert access[1]["status"] == 404
    # lifecycle lines on stderr are JSON too
    lifecycle = [json.loads(line) for line in err.splitlines()]
    assert any(r["message"] == "Application startup complete." for r in lifecycle)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in lifecycle)


def test_handler_errors_are_logged_with_the_traceback_in_json() -> None:
    server = serve_process(
        "tests.deploy.handlers:Probe", "--port", "0", "--log-format", "json", cwd=ROOT
    )
    assert httpx.put(server.url + "/boom", json=1).status_code == 500
    status, _, err = finish(server)
    assert status == 0
    errors = [json.loads(line) for line in err.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1
    assert errors[0]["message"] == "handler raised for /boom"
    assert "RuntimeError: boom" in errors[0]["exc_info"]
