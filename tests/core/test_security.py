"""dataserve.core.security: TLS settings, client contexts, tokens and their flags."""

from __future__ import annotations

import argparse
import ssl

import pytest

from dataserve.core.security import (
    TOKEN_ENV,
    TLSConfig,
    add_arguments,
    bearer_token,
    client_ssl_context,
    tls_from_args,
    token_from_env,
    token_matches,
)


def test_tls_config_checks_its_files_exist(pki: dict[str, str]) -> None:
    TLSConfig(pki["cert"], pki["key"])
    with pytest.raises(FileNotFoundError, match="TLS key file not found"):
        TLSConfig(pki["cert"], "/nonexistent.key")
    with pytest.raises(FileNotFoundError, match="TLS client_ca file not found"):
        TLSConfig(pki["cert"], pki["key"], client_ca="/nonexistent-ca.pem")


def test_the_server_context_needs_tls_1_2_and_client_certs_only_with_a_ca(
    pki: dict[str, str],
) -> None:
    plain = TLSConfig(pki["cert"], pki["key"]).server_context()
    assert plain.minimum_version == ssl.TLSVersion.TLSv1_2
    assert plain.verify_mode == ssl.CERT_NONE
    mutual = TLSConfig(pki["cert"], pki["key"], pki["ca"]).server_context()
    assert mutual.verify_mode == ssl.CERT_REQUIRED


def test_client_contexts_verify_unless_told_not_to(pki: dict[str, str]) -> None:
    strict = client_ssl_context()
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    lax = client_ssl_context(verify=False)
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
    private = client_ssl_context(ca_file=pki["ca"])
    assert private.cert_store_stats()["x509_ca"] == 1
    client_ssl_context(cert=(pki["client_cert"], pki["client_key"]))


def test_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert token_from_env() is None
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert token_from_env() == "from-env"
    assert token_from_env("explicit") == "explicit"
    assert token_from_env("") is None  # an explicit empty token: no auth
    monkeypatch.setenv(TOKEN_ENV, "")
    assert token_from_env() is None


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (b"Bearer abc", b"abc"),
        (b"bearer abc", b"abc"),
        (b"  BEARER   abc  ", b"abc"),
        (b"Basic abc", None),
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"", None),
    ],
)
def test_bearer_token(header: bytes, token: bytes | None) -> None:
    assert bearer_token(header) == token


def test_token_matches() -> None:
    assert token_matches(b"secret", b"secret")
    assert not token_matches(b"secret", b"secreT")
    assert not token_matches(b"secret", b"")
    assert not token_matches(b"secret", None)


def parse(argv: list[str], *, token: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, token=token)
    return parser.parse_args(argv)


def test_the_flags_and_uvicorns_spellings(pki: dict[str, str]) -> None:
    args = parse(["--token", "t", "--ssl-certfile", pki["cert"], "--tls-key", pki["key"]])
    assert args.token == "t"
    assert tls_from_args(args) == TLSConfig(pki["cert"], pki["key"])
    mutual = parse(
        ["--tls-cert", pki["cert"], "--ssl-keyfile", pki["key"], "--tls-client-ca", pki["ca"]]
    )
    assert tls_from_args(mutual) == TLSConfig(pki["cert"], pki["key"], pki["ca"])


def test_token_false_leaves_out_the_token_flag() -> None:
    with pytest.raises(SystemExit):
        parse(["--token", "t"], token=False)
    assert tls_from_args(parse([], token=False)) is None


def test_half_a_tls_pair_is_an_error(pki: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="go together"):
        tls_from_args(parse(["--tls-cert", pki["cert"]]))
    with pytest.raises(ValueError, match="needs --tls-cert"):
        tls_from_args(parse(["--tls-client-ca", pki["ca"]]))
    with pytest.raises(ValueError, match="--tls-key: /nope does not exist"):
        tls_from_args(parse(["--tls-cert", pki["cert"], "--tls-key", "/nope"]))
