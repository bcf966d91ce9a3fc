"""The ASGI scope of each request on a connection (ASGI HTTP connection scope, spec 2.3).

A scope carries what its connection gives every request (the server's and
the client's addresses, the scheme, the root path, a copy of the lifespan
state) and what the request line says (method, version, path, query). The
parser (``dataserve.http.parsing``) begins a scope when a request begins and
completes it when its head is in.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import httptools

__all__ = ["Scopes"]


class Scopes:
    """Builds the scopes of one connection's requests."""

    __slots__ = ("_app_state", "_asgi", "_client", "_root_path", "_scheme", "_server")

    def __init__(self, *, app_state: Any, root_path: str, asgi: dict[str, str]) -> None:
        self._app_state = app_state
        self._root_path = root_path
        # The same for every request of the connection (uvicorn's Config
        # computes asgi_version on each access).
        self._asgi = asgi
        self._server: tuple[str, int | None] | None = None
        self._client: tuple[str, int] | None = None
        self._scheme = "http"

    def connected(self, server: Any, client: Any, scheme: str) -> None:
        """The connection's ends, in every scope from now on."""
        self._server, self._client, self._scheme = server, client, scheme

    def begin(self, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        """A request begins: its scope, with the list its headers are parsed into."""
        return {
            "type": "http",
            "asgi": self._asgi,
            "http_version": "1.1",
            "server": self._server,
            "client": self._client,
            "scheme": self._scheme,
            "root_path": self._root_path,
            "headers": headers,
            "state": self._app_state.copy(),
        }

    def complete(self, scope: dict[str, Any], method: bytes, version: str, url: bytes) -> None:
        """The request's head is in: its method, version and target."""
        scope["method"] = method.decode("ascii")
        if version != "1.1":
            scope["http_version"] = version
        parsed = httptools.parse_url(url)
        raw_path = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self._root_path + path
        scope["raw_path"] = self._root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed.query or b""
