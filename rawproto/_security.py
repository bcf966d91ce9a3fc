"""TLS and exposure decisions shared by every rawproto server and client.

``client_context`` turns a client's ``tls``/``verify``/``ca_file``/``cert``
arguments into an ``ssl.SSLContext`` (or ``None`` for plain TCP), the same
way for the native, tcpy, pyts and tinyproto clients.

``warn_if_exposed`` is what makes binding a token-less framing (tinyproto,
tcpy, pyts) beyond loopback an explicit choice: their wire formats have no
place for a token, so on any other address only client certificates keep
strangers out, and without them the server says so in its log.
"""

from __future__ import annotations

import logging
import ssl

from dataserve.core.net import is_loopback
from dataserve.core.security import TLSConfig, client_ssl_context

__all__ = ["client_context", "warn_if_exposed"]


def client_context(
    tls: bool | ssl.SSLContext = False,
    *,
    verify: bool = True,
    ca_file: str | None = None,
    cert: tuple[str, str] | None = None,
) -> ssl.SSLContext | None:
    """The client's TLS context, or ``None`` for plain TCP.

    TLS is on when ``tls`` is true (or a ready ``SSLContext``) or when any of
    ``ca_file``, ``cert`` or ``verify=False`` is given: asking how to verify
    the server only makes sense over TLS. The server is verified against
    the system's CAs (or ``ca_file``) unless ``verify=False``.
    """
    if isinstance(tls, ssl.SSLContext):
        return tls
    if not (tls or ca_file or cert or not verify):
        return None
    return client_ssl_context(verify=verify, ca_file=ca_file, cert=cert)


def warn_if_exposed(framing: str, host: str, tls: TLSConfig | None, logger: logging.Logger) -> bool:
    """Log a warning when a token-less ``framing`` listens beyond loopback
    without requiring client certificates; return whether it did."""
    if is_loopback(host) or (tls is not None and tls.client_ca):
        return False
    shown = host or "every interface"
    logger.warning(
        "%s server listening on %s: the %s wire format has no token, so anyone who "
        "can reach this address can use it. Bind 127.0.0.1, or serve TLS with client "
        "certificates (tls=TLSConfig(cert, key, client_ca=...)), or keep the network "
        "private (see docs/security.md).",
        framing,
        shown,
        framing,
    )
    return True
