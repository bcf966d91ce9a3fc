"""curl, as a user would type it, for each media type."""

from __future__ import annotations

import subprocess

import pytest

from dataserve.http.server import BackgroundServer
from tests.conftest import need_tool


@pytest.fixture(autouse=True)
def _curl() -> None:
    need_tool("curl")


def curl(*args: str) -> tuple[int, str, bytes]:
    out = subprocess.run(
        ["curl", "-sS", "-X", "PUT", "-o", "-", "-D", "/dev/stderr", *args],
        capture_output=True,
        timeout=30,
        check=True,
    )
    head = out.stderr.decode("latin-1")
    status = int(head.split()[1])
    ctype = next(
        (
            line.split(":", 1)[1].strip()
            for line in head.splitlines()
            if line.lower().startswith("content-type:")
        ),
        "",
    )
    return status, ctype, out.stdout


def test_json(echo_server: BackgroundServer) -> None:
    status, ctype, body = curl(
        "-H", "Content-Type: application/json", "-d", "[4, 5, 6]", echo_server.url + "/echo"
    )
    assert (status, ctype, body) == (200, "application/json", b"[4,5,6]")


def test_text(echo_server: BackgroundServer) -> None:
    status, ctype, body = curl(
        "-H", "Content-Type: text/plain", "--data-binary", "hello there", echo_server.url + "/echo"
    )
    assert (status, ctype, body) == (200, "text/plain", b"hello there")


def test_bytes_from_a_file(echo_server: BackgroundServer, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "blob.bin"
    path.write_bytes(bytes(range(256)) * 100)
    status, ctype, body = curl(
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        f"@{path}",
        echo_server.url + "/echo",
    )
    assert (status, ctype) == (200, "application/octet-stream")
    assert body == path.read_bytes()


def test_curl_default_form_type_gets_a_clear_415(echo_server: BackgroundServer) -> None:
    status, _, body = curl("-d", "[1]", echo_server.url + "/echo")
    assert status == 415
    assert b"unsupported media type 'application/x-www-form-urlencoded'" in body


def test_chunked_upload(echo_server: BackgroundServer) -> None:
    status, _, body = curl(
        "-H",
        "Content-Type: text/plain",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "chunked body",
        echo_server.url + "/echo",
    )
    assert (status, body) == (200, b"chunked body")
