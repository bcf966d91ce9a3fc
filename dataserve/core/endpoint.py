"""Where a server listens and who may call it, as one value.

``Endpoint(host, port, uds=None, tls=None, token=None)`` is what every
server entry point takes as ``endpoint=`` (``run_http_server``,
``rawproto.serve``), as an alternative to its separate ``host``, ``port``,
``uds``, ``tls`` and ``token`` keywords. It is checked when it is made, so a
wrong port or a socket path too long for the kernel is one clear error before
anything binds.

As with ``Limits``, the command-line flags are derived here once:
``Endpoint.add_arguments`` adds ``--host``, ``--port``, ``--uds`` and the
security flags (``--token``, ``--tls-*``, from ``dataserve.core.security``)
with the command's own defaults, and ``Endpoint.from_args`` reads them back,
keeping a base endpoint's values for the flags not given.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .flags import port as port_flag
from .net import DEFAULT_HOST
from .security import TLSConfig, tls_from_args
from .security import add_arguments as add_security_arguments

__all__ = ["Endpoint", "exclusive", "resolve_endpoint"]

#: The longest Unix socket path the kernel binds: ``sun_path`` less its NUL
#: (108 bytes on Linux, 104 on the BSDs and macOS).
MAX_UDS_PATH = 107 if sys.platform.startswith("linux") else 103


class _FieldError(ValueError):
    """A bad value for one field; ``from_args`` names the field's flag."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a server listens (``host:port``, or a Unix socket) and what it asks of clients.

    * ``host``: the address to bind; loopback unless told otherwise (``0.0.0.0``
      or ``::`` serve other machines). ``[::1]`` is taken as ``::1``.
    * ``port``: the TCP port, 0 to 65535; 0 picks a free one.
    * ``uds``: the path of a Unix domain socket to listen on instead of
      ``host:port`` (for clients on the same host); ``None`` for TCP.
    * ``tls``: a ``TLSConfig`` to serve TLS, or ``None``.
    * ``token``: the bearer token every client must present; ``None`` reads
      ``$DATASERVE_TOKEN`` when the server starts, ``""`` requires none.
    """

    host: str = DEFAULT_HOST
    port: int = 0
    uds: str | os.PathLike[str] | None = None
    tls: TLSConfig | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str):
            raise TypeError(f"host must be a string, not {type(self.host).__name__}")
        if any(c.isspace() for c in self.host):
            raise _FieldError("host", f"{self.host!r} is not an address (it has spaces)")
        if self.host.startswith("[") and self.host.endswith("]"):
            object.__setattr__(self, "host", self.host[1:-1])
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise TypeError(f"port must be an int, not {type(self.port).__name__}")
        if not 0 <= self.port <= 65535:
            raise _FieldError("port", f"{self.port} is not a port (0 to 65535; 0 picks a free one)")
        if self.uds is not None:
            object.__setattr__(self, "uds", _uds_path(self.uds))
        if self.tls is not None and not isinstance(self.tls, TLSConfig):
            raise TypeError(f"tls must be a TLSConfig or None, not {type(self.tls).__name__}")
        if self.token is not None:
            if not isinstance(self.token, str):
                raise TypeError(f"token must be a string or None, not {type(self.token).__name__}")
            # It travels in an HTTP header (and the native AUTH frame): no line breaks.
            if any(ord(c) < 32 or ord(c) == 127 for c in self.token):
                raise _FieldError("token", "has control characters (a header cannot carry them)")

    @property
    def where(self) -> str:
        """How messages name it: ``unix:PATH``, or ``host:port`` (``[v6]:port``)."""
        if self.uds is not None:
            return f"unix:{os.fspath(self.uds)}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def replace(self, **changes: Any) -> Endpoint:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def add_arguments(
        parser: argparse.ArgumentParser,
        *,
        host: str | None = DEFAULT_HOST,
        port: int | None = None,
        uds_clients: str | None = None,
        token: bool = True,
    ) -> None:
        """Add ``--host``, ``--port``, ``--uds`` and the security flags to ``parser``.

        ``host`` and ``port`` are this command's defaults; ``None`` leaves the
        flag's value ``None``, meaning "the server object's own" (see
        ``from_args``'s ``base``). ``uds_clients`` says how clients reach
        the Unix socket (``"RawDataClient(uds=PATH)"``), for the help; without
        it there is no ``--uds``. ``token=False`` leaves out ``--token``, for wire formats
        that carry none.
        """
        group = parser.add_argument_group("where to listen")
        shown_host = "the server object's" if host is None else host
        group.add_argument(
            "--host",
            default=host,
            help=f"address to bind (default {shown_host}; 0.0.0.0 serves other machines)",
        )
        shown_port = "the server object's" if port is None else port
        group.add_argument(
            "--port",
            type=port_flag,
            default=port,
            help=f"port (default {shown_port}; 0 picks a free one)",
        )
        if uds_clients is not None:
            group.add_argument(
                "--uds",
                default=None,
                metavar="PATH",
                help=f"listen on this Unix domain socket instead of --host/--port (clients on "
                f"this host: {uds_clients}); a socket file already there is replaced",
            )
        add_security_arguments(parser, token=token)

    @classmethod
    def from_args(cls, args: argparse.Namespace, base: Endpoint | None = None) -> Endpoint:
        """The endpoint the flags say; flags not given (``None``) keep ``base``'s values.

        A bad value raises ``ValueError`` naming its flag.
        """
        base = base or cls()
        tls = tls_from_args(args)
        changes: dict[str, Any] = {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "uds": getattr(args, "uds", None),
            "tls": tls,
            "token": getattr(args, "token", None),
        }
        try:
            return base.replace(**{k: v for k, v in changes.items() if v is not None})
        except _FieldError as exc:
            raise ValueError(f"argument --{exc.name}: {exc.message}") from None


def _uds_path(path: str | os.PathLike[str]) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"uds must be a path or None, not {type(path).__name__}")
    text = os.fspath(path)
    if not text:
        raise _FieldError("uds", "the socket path is empty")
    size = len(os.fsencode(text))
    if size > MAX_UDS_PATH:
        raise _FieldError(
            "uds",
            f"{text} is {size} bytes long; a Unix socket path may have at most "
            f"{MAX_UDS_PATH} (use a shorter directory, such as /tmp or $XDG_RUNTIME_DIR)",
        )
    return text


def exclusive(name: str, given: Mapping[str, bool]) -> None:
    """Refuse ``name=`` together with the separate keywords it replaces.

    ``given`` maps each keyword to whether the caller set it (a value other
    than its default); any set one is a ``TypeError`` that names it.
    """
    clashing = [f"{keyword}=" for keyword, is_set in given.items() if is_set]
    if clashing:
        raise TypeError(f"give {name}= or {', '.join(clashing)}, not both")


def resolve_endpoint(
    endpoint: Endpoint | None,
    *,
    host: str,
    port: int | None,
    uds: str | os.PathLike[str] | None,
    tls: TLSConfig | None,
    token: str | None,
) -> Endpoint:
    """What a server listens on: ``endpoint``, or one made of its separate keywords.

    A server that takes both refuses ``endpoint=`` with any of the others
    set (``port=None`` is "not set": it means port 0 without an endpoint).
    """
    if endpoint is None:
        return Endpoint(host, 0 if port is None else port, uds=uds, tls=tls, token=token)
    if not isinstance(endpoint, Endpoint):
        raise TypeError(f"endpoint must be an Endpoint, not {type(endpoint).__name__}")
    exclusive(
        "endpoint",
        {
            "host": host != DEFAULT_HOST,
            "port": port is not None,
            "uds": uds is not None,
            "tls": tls is not None,
            "token": token is not None,
        },
    )
    return endpoint
