"""rawproto._security: the clients' TLS context and the warning for exposed token-less servers."""

from __future__ import annotations

import logging
import ssl

import pytest

from dataserve.core.security import TLSConfig
from rawproto._security import client_context, warn_if_exposed

LOG = logging.getLogger("tests.rawproto.security")


def test_plain_tcp_unless_something_asks_for_tls() -> None:
    assert client_context() is None
    assert client_context(False, verify=True) is None


def test_a_ready_context_is_used_as_it_is() -> None:
    ctx = ssl.create_default_context()
    assert client_context(ctx) is ctx
    assert client_context(ctx, verify=False) is ctx


def test_tls_true_verifies_the_server() -> None:
    ctx = client_context(True)
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_verify_false_turns_tls_on_without_checking() -> None:
    ctx = client_context(verify=False)
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_a_ca_file_or_a_client_cert_turns_tls_on(pki: dict[str, str]) -> None:
    by_ca = client_context(ca_file=pki["ca"])
    assert isinstance(by_ca, ssl.SSLContext) and by_ca.verify_mode == ssl.CERT_REQUIRED
    by_cert = client_context(cert=(pki["client_cert"], pki["client_key"]))
    assert isinstance(by_cert, ssl.SSLContext)


def test_a_missing_ca_file_is_an_error(tmp_path: object) -> None:
    with pytest.raises((OSError, ValueError)):
        client_context(ca_file="/nonexistent/ca.pem")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.3.4.5"])
def test_loopback_never_warns(host: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert warn_if_exposed("tcpy", host, None, LOG) is False
    assert caplog.records == []


@pytest.mark.parametrize(("host", "shown"), [("0.0.0.0", "0.0.0.0"), ("", "every interface")])
def test_beyond_loopback_without_client_certificates_warns(
    host: str, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert warn_if_exposed("pyts", host, None, LOG) is True
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"pyts server listening on {shown}" in record.getMessage()
    assert "docs/security.md" in record.getMessage()


def test_tls_without_client_certificates_still_warns(
    pki: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    tls = TLSConfig(pki["cert"], pki["key"])
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert warn_if_exposed("tinyproto", "0.0.0.0", tls, LOG) is True


def test_client_certificates_required_means_no_warning(
    pki: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    tls = TLSConfig(pki["cert"], pki["key"], client_ca=pki["ca"])
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert warn_if_exposed("tinyproto", "0.0.0.0", tls, LOG) is False
    assert caplog.records == []
