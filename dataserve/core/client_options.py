"""How a client talks to a server: timeouts, TLS and the token, as one value.

``ClientOptions`` is what every data client takes as ``options=``
(``HTTPDataClient``, ``AsyncHTTPDataClient``, ``rawproto.RawDataClient``,
``rawproto.AsyncRawDataClient``), as an alternative to its separate
``timeout``, ``verify``, ``ca_file``, ``cert`` and ``token`` keywords. The
timeouts follow ``httpx.Timeout``: four of them, in seconds, ``None`` for no
limit; the defaults are the core's (``dataserve.core.net``), written there once.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from dataclasses import dataclass
from typing import Any

from .net import CLIENT_TIMEOUT, CONNECT_TIMEOUT, POOL_TIMEOUT

__all__ = ["DEFAULT_CLIENT_OPTIONS", "ClientOptions"]

_TIMEOUTS = ("connect_timeout", "read_timeout", "write_timeout", "pool_timeout")


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """A client's timeouts (seconds; ``None``: no limit), TLS settings and token.

    * ``connect_timeout``: to open the connection (and finish the TLS handshake).
    * ``read_timeout``: for the answer. Handlers may be slow and payloads large.
    * ``write_timeout``: for sending a request's bytes (HTTP; the raw clients'
      blocking sends are bounded by ``read_timeout``).
    * ``pool_timeout``: for a free connection of the pool (HTTP only).
    * ``token``: sent as the bearer token; ``None`` reads ``$DATASERVE_TOKEN``,
      ``""`` sends none.
    * ``tls``: the raw clients speak TLS (an ``ssl.SSLContext`` is used as it
      is, by the HTTP clients too); over HTTP the URL's scheme decides.
      ``verify``, ``ca_file`` and ``cert`` turn TLS on for the raw clients as well.
    * ``verify``: check the server's certificate; ``False`` must be said explicitly.
    * ``ca_file``: trust this CA (PEM) instead of the system's.
    * ``cert``: ``(certfile, keyfile)``, a client certificate for mutual TLS.
    """

    connect_timeout: float | None = CONNECT_TIMEOUT
    read_timeout: float | None = CLIENT_TIMEOUT
    write_timeout: float | None = CLIENT_TIMEOUT
    pool_timeout: float | None = POOL_TIMEOUT
    token: str | None = None
    tls: bool | ssl.SSLContext = False
    verify: bool = True
    ca_file: str | os.PathLike[str] | None = None
    cert: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        for name in _TIMEOUTS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be seconds or None, not {type(value).__name__}")
            if not value >= 0:  # also refuses nan
                raise ValueError(f"{name} must be 0 seconds or more (or None), not {value}")
        if self.token is not None and not isinstance(self.token, str):
            raise TypeError(f"token must be a string or None, not {type(self.token).__name__}")
        if not isinstance(self.tls, (bool, ssl.SSLContext)):
            what = type(self.tls).__name__
            raise TypeError(f"tls must be a bool or an ssl.SSLContext, not {what}")
        if not isinstance(self.verify, bool):
            raise TypeError(f"verify must be True or False, not {type(self.verify).__name__}")
        if self.ca_file is not None:
            if not isinstance(self.ca_file, (str, os.PathLike)):
                raise TypeError(f"ca_file must be a path, not {type(self.ca_file).__name__}")
            object.__setattr__(self, "ca_file", os.fspath(self.ca_file))
        if self.cert is not None:
            if (
                not isinstance(self.cert, tuple)
                or len(self.cert) != 2
                or not all(isinstance(p, (str, os.PathLike)) for p in self.cert)
            ):
                raise TypeError("cert must be a (certfile, keyfile) pair of paths")
            object.__setattr__(self, "cert", tuple(os.fspath(p) for p in self.cert))

    @classmethod
    def with_timeout(cls, timeout: float | None, **others: Any) -> ClientOptions:
        """Every timeout ``timeout`` seconds (as ``httpx.Timeout(timeout)``), and ``others``."""
        return cls(**dict.fromkeys(_TIMEOUTS, timeout), **others)

    def timeouts(self) -> dict[str, float | None]:
        """``{"connect", "read", "write", "pool"}``: ``httpx.Timeout(**options.timeouts())``."""
        return {name.removesuffix("_timeout"): getattr(self, name) for name in _TIMEOUTS}

    @property
    def ca_path(self) -> str | None:
        """``ca_file`` as a string (it is stored as one)."""
        return None if self.ca_file is None else os.fspath(self.ca_file)

    def replace(self, **changes: Any) -> ClientOptions:
        return dataclasses.replace(self, **changes)


DEFAULT_CLIENT_OPTIONS = ClientOptions()
