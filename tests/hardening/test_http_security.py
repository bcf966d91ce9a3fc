"""TLS, tokens and the handler timeout on the HTTP listener."""

from __future__ import annotations

import ssl
import sys
import threading
from typing import Any

import httpx
import pytest

from dataserve import (
    ConnectError,
    GatewayTimeout,
    HTTPDataClient,
    Limits,
    TransportError,
    Unauthorized,
    create_app,
)
from dataserve.core.security import TLSConfig
from tests.conftest import ServerProcess

from ..http.conftest import EchoHandler


def test_tls_verifies_against_a_ca_file(serve: Any, pki: dict[str, str]) -> None:
    server = serve(create_app(EchoHandler), tls=TLSConfig(pki["cert"], pki["key"]))
    assert server.url.startswith("https://")
    with HTTPDataClient(server.port, "https://127.0.0.1:", ca_file=pki["ca"]) as client:
        assert client.send("/echo", [1, 2]) == [1, 2]
    # the system trust store does not know our CA: refused by default
    with (
        HTTPDataClient(server.port, "https://127.0.0.1:") as client,
        pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.send("/echo", 1)
    # verify=False must be said explicitly
    with HTTPDataClient(server.port, "https://127.0.0.1:", verify=False) as client:
        assert client.send("/echo", "x") == "x"


def test_client_certificates_are_required_when_configured(serve: Any, pki: dict[str, str]) -> None:
    tls = TLSConfig(pki["cert"], pki["key"], client_ca=pki["ca"])
    server = serve(create_app(EchoHandler), tls=tls)
    cert = (pki["client_cert"], pki["client_key"])
    with HTTPDataClient(server.port, "https://127.0.0.1:", ca_file=pki["ca"], cert=cert) as c:
        assert c.send("/echo", "mtls") == "mtls"
    # TLS 1.3 reports the missing certificate after the handshake: no answer
    with (
        HTTPDataClient(server.port, "https://127.0.0.1:", ca_file=pki["ca"]) as c,
        pytest.raises(
            TransportError, match="CERTIFICATE_REQUIRED|disconnected without sending a response"
        ),
    ):
        c.send("/echo", "no client cert")


def test_plain_http_to_a_tls_port_gets_no_answer(serve: Any, pki: dict[str, str]) -> None:
    server = serve(create_app(EchoHandler), tls=TLSConfig(pki["cert"], pki["key"]))
    with pytest.raises(httpx.HTTPError):
        httpx.put(f"http://127.0.0.1:{server.port}/echo", content=b"x")
    with HTTPDataClient(server.port, "https://127.0.0.1:", ca_file=pki["ca"]) as client:
        assert client.send("/echo", "still serving") == "still serving"


def test_missing_tls_files_are_reported() -> None:
    with pytest.raises(FileNotFoundError, match="TLS cert file not found: /nope.pem"):
        TLSConfig("/nope.pem", "/nope.key")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Basic c2VjcmV0", "Bearer", "bearer secret-but-longer"],
)
def test_token_is_required(serve: Any, authorization: str | None) -> None:
    server = serve(create_app(EchoHandler, token="secret"))
    headers = {"authorization": authorization} if authorization else {}
    r = httpx.put(server.url + "/echo", content=b"x", headers=headers)
    assert r.status_code == 401
    assert r.text == "missing or wrong token: send Authorization: Bearer <token>"
    assert r.headers["www-authenticate"] == 'Bearer realm="dataserve"'
    ok = httpx.put(
        server.url + "/echo",
        content=b"x",
        headers={"authorization": "Bearer secret", "content-type": "text/plain"},
    )
    assert ok.status_code == 200 and ok.text == "x"


def test_two_authorization_headers_are_refused(serve: Any) -> None:
    server = serve(create_app(EchoHandler, token="secret"))
    r = httpx.put(
        server.url + "/echo",
        content=b"x",
        headers=[("authorization", "Bearer secret"), ("authorization", "Bearer secret")],
    )
    assert r.status_code == 401


def test_clients_send_the_token(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(create_app(EchoHandler, token="s3cret"))
    with HTTPDataClient(server.port, "http://127.0.0.1:", token="s3cret") as client:
        assert client.send("/echo", 5) == 5
    with (
        HTTPDataClient(server.port, "http://127.0.0.1:") as client,
        pytest.raises(Unauthorized, match="missing or wrong token"),
    ):
        client.send("/echo", 5)
    monkeypatch.setenv("DATASERVE_TOKEN", "s3cret")
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client.send("/echo", 6) == 6


def test_serve_reads_the_token_from_the_environment() -> None:
    server = ServerProcess(
        [sys.executable, "-m", "dataserve", "serve", "tests.http.handlers:Echo", "--port", "0"],
        env={"DATASERVE_TOKEN": "from-env"},
    )
    try:
        assert httpx.put(server.url + "/echo", json=1).status_code == 401
        r = httpx.put(server.url + "/echo", json=1, headers={"authorization": "Bearer from-env"})
        assert r.status_code == 200
    finally:
        assert server.stop() == 0


def test_serve_with_tls_flags(pki: dict[str, str]) -> None:
    server = ServerProcess(
        [
            sys.executable, "-m", "dataserve", "serve", "tests.http.handlers:Echo",
            "--port", "0", "--tls-cert", pki["cert"], "--tls-key", pki["key"],
        ]
    )  # fmt: skip
    try:
        assert "https://127.0.0.1:" in server.lines[0]
        context = ssl.create_default_context(cafile=pki["ca"])
        r = httpx.put(f"https://127.0.0.1:{server.port}/echo", json=[1], verify=context)
        assert r.json() == [1]
    finally:
        assert server.stop() == 0


def test_half_a_tls_pair_is_a_clear_error(pki: dict[str, str]) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "dataserve", "serve", "--port", "0", "--tls-cert", pki["cert"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "dataserve: error: --tls-cert and --tls-key go together"


def test_a_handler_that_hangs_gets_504_and_the_server_keeps_serving(serve: Any) -> None:
    release = threading.Event()

    def handler(resource: str, payload: Any) -> Any:
        if resource == "/hang":
            release.wait(30)
            return "late"
        return "ok"

    server = serve(create_app(handler, limits=Limits(handler_timeout=0.5, handler_threads=2)))
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        with pytest.raises(GatewayTimeout, match="did not answer within 0.5 s"):
            client.send("/hang")
        assert client.send("/other") == "ok"  # the second handler thread answers
    release.set()


def test_metrics_need_the_token_health_and_ready_do_not(serve: Any) -> None:
    server = serve(create_app(EchoHandler, token="secret"))
    assert httpx.get(server.url + "/_dataserve/health").status_code == 200
    assert httpx.get(server.url + "/_dataserve/ready").status_code == 200
    r = httpx.get(server.url + "/_dataserve/metrics")
    assert r.status_code == 401 and r.text.startswith("missing or wrong token")
    r = httpx.get(server.url + "/_dataserve/metrics", headers={"authorization": "Bearer secret"})
    assert r.status_code == 200 and "dataserve_" in r.text
