"""``run_http_server(endpoint=Endpoint(...))`` over real sockets, called by
clients built from ``ClientOptions``: TCP with TLS and a token, and a Unix socket."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from dataserve import (
    AsyncHTTPDataClient,
    ClientOptions,
    HTTPDataClient,
    TimeoutError,
    Unauthorized,
)
from tests.conftest import ServerProcess

SERVER = textwrap.dedent(
    """
    import sys, time
    from dataserve import Endpoint, TLSConfig, run_http_server

    def handler(resource, payload):
        if resource == "/slow":
            time.sleep(3)  # sleep-ok: a slow handler, for the client's read timeout
        return payload

    where = sys.argv[1]
    if where == "tcp":
        endpoint = Endpoint(port=0, tls=TLSConfig(sys.argv[2], sys.argv[3]), token="s3cret")
    else:
        endpoint = Endpoint(uds=where, token="s3cret")
    run_http_server(data_handler=handler, endpoint=endpoint, handler_threads=2)
    """
)


def _serve(tmp_path: Path, *args: str) -> ServerProcess:
    return ServerProcess.script(tmp_path, SERVER, *args)


def test_tls_and_a_token_over_tcp(tmp_path: Path, pki: dict[str, str]) -> None:
    server = _serve(tmp_path, "tcp", pki["cert"], pki["key"])
    try:
        assert "https://127.0.0.1:" in server.lines[0]
        options = ClientOptions(ca_file=pki["ca"], token="s3cret", connect_timeout=5)
        with HTTPDataClient(server.port, "https://127.0.0.1:", options=options) as client:
            assert client.options is options
            assert client.send("/echo", [1, 2]) == [1, 2]
        wrong = options.replace(token="wrong")
        with (
            HTTPDataClient(server.port, "https://127.0.0.1:", options=wrong) as client,
            pytest.raises(Unauthorized),
        ):
            client.send("/echo", 1)
        hasty = options.replace(read_timeout=0.3)
        with (
            HTTPDataClient(server.port, "https://127.0.0.1:", options=hasty) as client,
            pytest.raises(TimeoutError),
        ):
            client.send("/slow", 1)
    finally:
        assert server.stop() == 0


def test_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sock")
    server = _serve(tmp_path, path)
    try:
        assert server.uds == path
        options = ClientOptions.with_timeout(30, token="s3cret")
        with HTTPDataClient(uds=path, options=options) as client:
            assert client.send("/echo", b"\x00" * 100_000) == b"\x00" * 100_000

        async def main() -> list[object]:
            async with AsyncHTTPDataClient(uds=path, options=options) as client:
                return list(await asyncio.gather(*(client.send("/echo", i) for i in range(5))))

        assert asyncio.run(main()) == list(range(5))
        with (
            HTTPDataClient(uds=path, options=ClientOptions(token="")) as client,
            pytest.raises(Unauthorized),
        ):
            client.send("/echo", 1)
    finally:
        assert server.stop() == 0
