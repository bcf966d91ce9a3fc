"""``dataserve serve --tcp-port``: a handler over HTTP and native TCP, with token, TLS, workers."""

from __future__ import annotations

import os
import re
import ssl
import sys
import time
from typing import Any

import httpx
import pytest

from dataserve import HTTPDataClient, NotHandled
from dataserve.core.security import TOKEN_ENV
from rawproto import ConnectError, ConnectionClosed, RawDataClient, Unauthorized

from .conftest import finish

SERVE = [sys.executable, "-m", "dataserve", "serve", "--port", "0", "--tcp-port", "0"]
SERVE += ["--log-level", "warning"]


def test_http_and_tcp_share_one_handler_instance(server_process: Any) -> None:
    server = server_process([*SERVE, "tests.rawproto.handlers:Counter"])
    tcp_port = _tcp_port(server)
    with HTTPDataClient(server.port, "http://127.0.0.1:") as http, RawDataClient(tcp_port) as tcp:
        assert http.send("/count", "a") == {"call": 1, "payload": "a"}
        assert tcp.send("/count", "b") == {"call": 2, "payload": "b"}
        assert http.send("/count", [3]) == {"call": 3, "payload": [3]}
        with pytest.raises(NotHandled):
            tcp.send("/other")
    status, _ = finish(server)
    assert status == 0  # SIGTERM: both listeners drain, then exit 0


def _tcp_port(server: Any) -> int:
    line = server.line(1)
    match = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
    assert match, line
    return int(match.group(1))


def _native_requests(metrics: str, resource: str, status: str = "200") -> float:
    pattern = (
        r"^dataserve_requests_total\{(?=[^}]*transport=\"native\")(?=[^}]*resource=\""
        + re.escape(resource)
        + r"\")(?=[^}]*status=\""
        + status
        + r"\")[^}]*\} (\S+)$"
    )
    match = re.search(pattern, metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_token_tls_and_metrics_apply_to_the_tcp_port(
    server_process: Any, pki: dict[str, str]
) -> None:
    server = server_process(
        [
            *SERVE,
            "tests.rawproto.handlers:Counter",
            "--tls-cert",
            pki["cert"],
            "--tls-key",
            pki["key"],
        ],
        env={TOKEN_ENV: "s3cret"},
    )
    tcp_port = _tcp_port(server)
    ca = pki["ca"]
    with RawDataClient(tcp_port, token="s3cret", ca_file=ca) as tcp:
        assert tcp.send("/count", "a") == {"call": 1, "payload": "a"}
        assert tcp.send("/count", "b") == {"call": 2, "payload": "b"}
    with RawDataClient(tcp_port, token="", ca_file=ca) as tcp, pytest.raises(Unauthorized):
        tcp.send("/count", "no token")
    with RawDataClient(tcp_port, token="wrong", ca_file=ca) as tcp, pytest.raises(Unauthorized):
        tcp.send("/count", "wrong token")
    with (
        RawDataClient(tcp_port, token="s3cret", tls=True) as tcp,
        pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        tcp.send("/count", "the system's CAs do not know ours")
    with (
        RawDataClient(tcp_port, token="s3cret") as tcp,
        pytest.raises(ConnectionClosed),  # "does it serve TLS?", or a reset
    ):
        tcp.send("/count", "plain TCP to a TLS port")
    with HTTPDataClient(server.port, "https://127.0.0.1:", token="s3cret", ca_file=ca) as http:
        assert http.send("/count", "c") == {"call": 3, "payload": "c"}
        context = ssl.create_default_context(cafile=ca)
        url = f"https://127.0.0.1:{server.port}/_dataserve/metrics"
        assert httpx.get(url, verify=context).status_code == 401  # metrics need the token too
        metrics = httpx.get(url, verify=context, headers={"authorization": "Bearer s3cret"})
        assert metrics.status_code == 200
    assert _native_requests(metrics.text, "/count") == 2
    status, _ = finish(server)
    assert status == 0


@pytest.mark.slow
def test_workers_each_listen_on_the_tcp_port(server_process: Any, pki: dict[str, str]) -> None:
    tls = ["--tls-cert", pki["cert"], "--tls-key", pki["key"]]
    server = server_process(
        [*SERVE, "tests.rawproto.handlers:Pid", "--workers", "2", *tls],
        env={TOKEN_ENV: "s3cret"},
    )
    tcp_port = _tcp_port(server)
    ca = pki["ca"]
    with HTTPDataClient(server.port, "https://127.0.0.1:", token="s3cret", ca_file=ca) as http:
        assert http.send("/pid") > 0  # waits in the backlog until a worker is up
    # New connections spread over the workers' listeners (SO_REUSEPORT); a
    # worker still starting gets none until it listens. Each try is a round trip.
    tcp_pids: list[int] = []
    deadline = time.monotonic() + 60
    while len(set(tcp_pids)) < 2 and time.monotonic() < deadline:
        with RawDataClient(tcp_port, token="s3cret", ca_file=ca) as tcp:
            tcp_pids.append(tcp.send("/pid"))
    assert len(set(tcp_pids)) == 2, tcp_pids
    with RawDataClient(tcp_port, token="", ca_file=ca) as tcp, pytest.raises(Unauthorized):
        tcp.send("/pid")
    # Workers share the metrics (prometheus-client's multiprocess mode); each
    # adds its tallies to the shared files every half second.
    context = ssl.create_default_context(cafile=ca)

    def counted() -> int:
        metrics = httpx.get(
            f"https://127.0.0.1:{server.port}/_dataserve/metrics",
            verify=context,
            headers={"authorization": "Bearer s3cret"},
        )
        return _native_requests(metrics.text, "/pid")

    deadline = time.monotonic() + 30
    while counted() != len(tcp_pids) and time.monotonic() < deadline:
        pass  # each try is a scrape: a round trip, no sleep
    assert counted() == len(tcp_pids)
    status, _ = finish(server)  # SIGTERM: every worker drains and exits
    assert status == 0
    for pid in set(tcp_pids):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
