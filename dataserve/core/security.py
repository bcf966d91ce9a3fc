"""TLS and token settings shared by every listener and client.

Kept in the core (stdlib ``ssl`` and ``hmac`` only) so the HTTP server,
the raw TCP engine and both kinds of client read the same settings.

* TLS: ``TLSConfig(cert, key, client_ca)`` for servers; ``client_ssl_context``
  for clients, which verify the server by default (``verify=False`` must be
  said explicitly; ``ca_file`` trusts a private CA).
* Tokens: a shared secret presented as ``Authorization: Bearer <token>`` over
  HTTP (the native TCP framing carries it in its first frame). Compared with
  ``hmac.compare_digest``, in constant time. ``DATASERVE_TOKEN`` in the
  environment keeps it out of process lists.
"""

from __future__ import annotations

import argparse
import hmac
import os
import ssl
from dataclasses import dataclass

__all__ = [
    "TOKEN_ENV",
    "TLSConfig",
    "add_arguments",
    "bearer_token",
    "client_ssl_context",
    "tls_from_args",
    "token_from_env",
    "token_matches",
]

#: The environment variable servers and clients read the token from.
TOKEN_ENV = "DATASERVE_TOKEN"


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """A server's certificate and key (PEM files), and optionally the CA whose
    client certificates it requires (mutual TLS)."""

    cert: str
    key: str
    client_ca: str | None = None

    def __post_init__(self) -> None:
        for name in ("cert", "key", "client_ca"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise FileNotFoundError(f"TLS {name} file not found: {path}")

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca:
            context.load_verify_locations(cafile=self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def client_ssl_context(
    verify: bool = True,
    ca_file: str | None = None,
    cert: tuple[str, str] | None = None,
) -> ssl.SSLContext:
    """A client context: verifies the server unless ``verify=False`` is explicit.

    ``ca_file`` trusts a private CA (instead of the system's); ``cert`` is a
    ``(certfile, keyfile)`` pair for servers that require client certificates.
    """
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def token_from_env(token: str | None = None) -> str | None:
    """The explicit token, else ``$DATASERVE_TOKEN``, else ``None`` (no auth)."""
    if token is not None:
        return token or None
    return os.environ.get(TOKEN_ENV) or None


def bearer_token(header: bytes) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` value, else ``None``."""
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token:
        return None
    return token.strip()


def token_matches(expected: bytes, presented: bytes | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    if presented is None:
        return False
    return hmac.compare_digest(expected, presented)


def add_arguments(parser: argparse.ArgumentParser, *, token: bool = True) -> None:
    """The server-side security flags, shared by every command that listens.

    ``token=False`` leaves out ``--token``, for wire formats that carry none.
    """
    group = parser.add_argument_group("security" if token else "TLS (the wire format has no token)")
    if token:
        group.add_argument(
            "--token",
            default=None,
            help=f"require this bearer token (better: set ${TOKEN_ENV}, kept out of process lists)",
        )
    # --ssl-certfile / --ssl-keyfile: uvicorn's names, for those who type them.
    group.add_argument(
        "--tls-cert",
        "--ssl-certfile",
        dest="tls_cert",
        metavar="FILE",
        help="serve TLS with this PEM certificate",
    )
    group.add_argument(
        "--tls-key",
        "--ssl-keyfile",
        dest="tls_key",
        metavar="FILE",
        help="the certificate's PEM private key",
    )
    group.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="require client certificates signed by this CA (mutual TLS)",
    )


def tls_from_args(args: argparse.Namespace) -> TLSConfig | None:
    """``TLSConfig`` from the flags, or ``None``; half a pair is an error."""
    cert, key, client_ca = args.tls_cert, args.tls_key, args.tls_client_ca
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), ("--tls-client-ca", client_ca)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{flag}: {path} does not exist")
    return TLSConfig(cert, key, client_ca)
