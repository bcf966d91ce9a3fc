"""HTTP servers for the scenarios: ours via ``dataserve serve``, the peers via their scripts."""

from __future__ import annotations

import http.client
import socket
import sys
from pathlib import Path

from .context import Context
from .env import ROOT, python_env
from .proc import Server

PEERS_DIR = Path(__file__).resolve().parent / "peers"

SEED_BODY = b"[4, 5, 6]"
SEED_ANSWER = [1, 2, 3, 4, 5, 6]


def ours(ctx: Context, name: str, handler: str, *flags: str, pinned: bool = True) -> Server:
    """``dataserve serve HANDLER --port 0`` with its defaults (access log off)."""
    argv = [sys.executable, "-m", "dataserve", "serve", handler, "--port", "0", *flags]
    return Server(name, argv, ctx.pin, env=python_env(ROOT), pinned=pinned)


def peer(ctx: Context, name: str, script: str, *paths: Path, pinned: bool = True) -> Server:
    """A peer script from ``bench/peers`` with ``paths`` first on its import path."""
    argv = [sys.executable, str(PEERS_DIR / script)]
    return Server(name, argv, ctx.pin, env=python_env(*paths), cwd=PEERS_DIR, pinned=pinned)


class _UnixConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix domain socket (``url`` ``unix:PATH``)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def put(
    url: str, path: str, body: bytes, content_type: str, timeout: float = 30.0
) -> tuple[int, str, bytes]:
    """One PUT on a fresh connection: (status, content type, body)."""
    conn: http.client.HTTPConnection
    if url.startswith("unix:"):
        conn = _UnixConnection(url[5:], timeout)
    else:
        host, _, port = url.removeprefix("http://").partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("PUT", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        conn.close()
