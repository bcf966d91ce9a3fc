"""rawproto.engine.running: an engine ``Service`` served from blocking code.

``BackgroundService`` and ``FacadeServer`` on the shared loop thread, bound
to port 0 with the real port read back, talked to over a real socket with
the toy line protocol (``lines.py``).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from dataserve.core.limits import Limits
from rawproto.engine.running import BackgroundService, FacadeServer
from rawproto.engine.session import Service

from .lines import LineService


def exchange(port: int, data: bytes, expect: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        got = b""
        while len(got) < len(expect):
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        return got


def test_a_background_service_binds_port_0_and_reports_the_real_port() -> None:
    service = LineService()
    server = BackgroundService(service, "127.0.0.1", 0, Limits())
    assert server.port == 0  # not bound yet
    assert server.start() is server
    try:
        assert server.port > 0
        assert exchange(server.port, b"!hi\n", b"!echo hi\n") == b"!echo hi\n"
    finally:
        server.stop(timeout=10)
    assert service.closed  # the service's aclose ran
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


class Lines(FacadeServer):
    FRAMING = "lines"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.limits = Limits()
        self.tls = None
        self.service = LineService()

    def _service(self) -> Service:
        return self.service

    def _address(self) -> tuple[str, int]:
        return self.host, self.port

    def _bound(self, port: int) -> None:
        self.port = port


def test_a_facade_server_starts_in_the_background_and_learns_its_port() -> None:
    with Lines() as server:
        assert server.port > 0
        assert exchange(server.port, b"!a\n", b"!echo a\n") == b"!echo a\n"
    assert server.service.closed


def test_a_facade_server_cannot_start_twice_and_stop_is_idempotent() -> None:
    server = Lines().start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    finally:
        server.stop()
    server.stop()  # nothing running: nothing to do


def test_threads_is_limits_handler_threads_under_the_seeds_name() -> None:
    server = Lines()
    assert server.threads == server.limits.handler_threads
    server.threads = 3
    assert server.limits.handler_threads == 3 and server.threads == 3


def test_a_facade_bound_beyond_loopback_warns_on_its_framings_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="rawproto.lines"):
        server: Any = BackgroundService(LineService(), "0.0.0.0", 0, Limits(), framing="lines")
    assert "lines server listening on 0.0.0.0" in caplog.text
    assert server.port == 0  # built, never started: nothing to stop


def test_on_loopback_there_is_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rawproto.lines"):
        BackgroundService(LineService(), "127.0.0.1", 0, Limits(), framing="lines")
    assert caplog.text == ""
