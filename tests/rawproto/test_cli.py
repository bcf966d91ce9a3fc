"""``dataserve serve --tcp-port``: one process serves a handler over HTTP and native TCP."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from dataserve import HTTPDataClient, NotHandled
from rawproto import RawDataClient

from ..conftest import ROOT
from .conftest import finish


def test_http_and_tcp_share_one_handler_instance(server_process: Any) -> None:
    server = server_process(
        [
            sys.executable,
            "-m",
            "dataserve",
            "serve",
            "tests.rawproto.handlers:Counter",
            "--port",
            "0",
            "--tcp-port",
            "0",
            "--log-level",
            "warning",
        ]
    )
    line = server.line(1)
    match = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
    assert match, line
    tcp_port = int(match.group(1))
    with HTTPDataClient(server.port, "http://127.0.0.1:") as http, RawDataClient(tcp_port) as tcp:
        assert http.send("/count", "a") == {"call": 1, "payload": "a"}
        assert tcp.send("/count", "b") == {"call": 2, "payload": "b"}
        assert http.send("/count", [3]) == {"call": 3, "payload": [3]}
        with pytest.raises(NotHandled):
            tcp.send("/other")
    status, _ = finish(server)
    assert status == 0  # SIGTERM: both listeners drain, then exit 0


def test_tcp_port_with_a_token_is_refused() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataserve",
            "serve",
            "--port",
            "0",
            "--tcp-port",
            "0",
            "--token",
            "secret",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert "tcp_port needs one worker and no token or TLS" in result.stderr
