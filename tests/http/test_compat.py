"""Wire compatibility with the original dataserve 0.1.0 from PyPI, both ways.

The original has the same import name, so it lives in its own ``--target``
folder and runs in a subprocess with ``PYTHONPATH`` pointing there.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from dataserve import AsyncHTTPDataClient, BadRequest, HTTPDataClient, create_app
from dataserve.example import ExampleHandler
from dataserve.http.server import BackgroundServer
from tests.conftest import ServerProcess, interop_target, run_python
from tests.interop import ORIGINALS

from .conftest import EchoHandler


@pytest.fixture(scope="module")
def original() -> Path:
    return interop_target("dataserve-0.1.0", *ORIGINALS["dataserve-0.1.0"])


def test_original_client_against_our_server(original: Path, serve: object) -> None:
    server: BackgroundServer = serve(create_app(EchoHandler))  # type: ignore[operator]
    example: BackgroundServer = serve(create_app(ExampleHandler))  # type: ignore[operator]
    code = textwrap.dedent(
        f"""
        import dataserve
        assert dataserve.__version__ == '0.1.0', dataserve.__file__
        from dataserve import HTTPDataClient
        c = HTTPDataClient({server.port}, address='http://127.0.0.1:')
        print(repr(c.send('/echo', 'some text')))
        print(repr(c.send('/echo', [1, {{'a': 2.5}}])))
        print(repr(c.send('/echo', bytearray(b'\\x00\\xff'))))
        print(repr(c.send('/echo')))           # None is sent as '' text/plain
        print(repr(c.send('/nope', 1)))        # not handled: the original returns None
        e = HTTPDataClient({example.port}, address='http://127.0.0.1:')
        print(repr(e.send('/xdata', [4, 5, 6])))
        print(repr(e.send('/ydata')))
        """
    )
    result = run_python(code, pythonpath=original)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "'some text'",
        "[1, {'a': 2.5}]",
        "b'\\x00\\xff'",
        "''",
        "None",
        "[1, 2, 3, 4, 5, 6]",
        "2",
    ]


# Report the port the original bound (it prints the requested one, 0).
REPORT_PORT = textwrap.dedent(
    """
    import http.server
    _activate = http.server.HTTPServer.server_activate
    def server_activate(self):
        _activate(self)
        print('listening on 127.0.0.1:%d' % self.server_address[1], flush=True)
    http.server.HTTPServer.server_activate = server_activate
    """
)

ORIGINAL_SERVER = REPORT_PORT + textwrap.dedent(
    """
    from dataserve import HTTPDataHandler, run_http_server

    class Handler(HTTPDataHandler):
        def handle_request(self, resource, payload):
            if resource == '/echo':
                return payload
            if resource == '/type':
                return type(payload).__name__
            return None

    run_http_server(0, Handler)
    """
)


def test_our_client_against_the_original_server(original: Path, tmp_path: Path) -> None:
    script = tmp_path / "original_server.py"
    script.write_text(ORIGINAL_SERVER)
    server = ServerProcess([sys.executable, str(script)], env={"PYTHONPATH": str(original)})
    try:
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            assert client.send("/echo", "text") == "text"
            assert client.send("/echo", [4, 5, 6]) == [4, 5, 6]
            assert client.send("/echo", {"k": None}) == {"k": None}
            assert client.send("/echo", b"\x00\x01") == b"\x00\x01"
            assert client.send("/type", b"x") == "bytes"
            # the original answers 400 for an unhandled resource
            with pytest.raises(BadRequest):
                client.send("/nope", 1)
    finally:
        server.proc.kill()
        server.proc.wait()


def test_the_original_is_really_the_original(original: Path) -> None:
    result = run_python("import dataserve; print(dataserve.__version__)", pythonpath=original)
    assert result.stdout.strip() == "0.1.0"


# Seed 001's own example, server and client lines as the seed prints them.
SEED_SERVER = textwrap.dedent(
    """
    from dataserve import HTTPDataHandler, run_http_server

    xdata = [1, 2, 3]

    class MyDataHandler(HTTPDataHandler):
        def handle_request(self, resource, payload):
            if resource == '/xdata':
                global xdata
                return xdata + payload
            elif resource == '/ydata':
                return 2
            return None

    run_http_server(0, MyDataHandler)
    """
)

# The dataserve 0.1 repository's manual pair: tests/manual/20_RunHTTPServer.py
# serves these three resources (zdata is an image file there, any bytes here)
# and 22_TestHTTPServer.py sends to each, the last one with payload None.
MANUAL_SERVER = textwrap.dedent(
    """
    from dataserve import HTTPDataHandler, run_http_server

    xdata = {'list': [1, 2, 3, 4], 'other': 5}
    zdata = b'BM' + bytes(range(256)) * 64

    class MyDataHandler(HTTPDataHandler):
        def handle_request(self, resource, payload):
            if resource == '/xdata':
                out_data = xdata.copy()
                out_data.update(payload)
                return out_data
            elif resource == '/ydata':
                return payload + ' with server appended text'
            elif resource == '/zdata':
                return zdata
            return None

    run_http_server(0, MyDataHandler)
    """
)
ZDATA = b"BM" + bytes(range(256)) * 64


def start_server(which: str, code: str, original: Path, tmp_path: Path) -> ServerProcess:
    """``code`` run by the original dataserve 0.1.0 or by ours, in a subprocess."""
    script = tmp_path / f"{which}_server.py"
    if which == "original":
        script.write_text(REPORT_PORT + code)
        return ServerProcess([sys.executable, str(script)], env={"PYTHONPATH": str(original)})
    script.write_text(code)
    return ServerProcess([sys.executable, str(script)])


@pytest.mark.parametrize("which", ["original", "ours"])
def test_seed_example_client_lines(which: str, original: Path, tmp_path: Path) -> None:
    server = start_server(which, SEED_SERVER, original, tmp_path)
    try:
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            assert client.send("/xdata", [4, 5, 6]) == [1, 2, 3, 4, 5, 6]
            # no payload: an empty text/plain body, which the original requires
            assert client.send("/ydata") == 2
    finally:
        server.stop()


@pytest.mark.parametrize("which", ["original", "ours"])
def test_manual_test_pair_with_payload_none(which: str, original: Path, tmp_path: Path) -> None:
    server = start_server(which, MANUAL_SERVER, original, tmp_path)
    try:
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            assert client.send("/xdata", {"list": [6, 7, 8, 9]}) == {
                "list": [6, 7, 8, 9],
                "other": 5,
            }
            assert client.send("/ydata", "client message") == (
                "client message with server appended text"
            )
            assert client.send("/zdata", None) == ZDATA
            # None reaches a 0.1 handler as '' on both servers: payload + '...' works
            assert client.send("/ydata") == " with server appended text"

        async def main() -> list[object]:
            async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
                return [await client.send("/zdata"), await client.send("/ydata", None)]

        assert asyncio.run(main()) == [ZDATA, " with server appended text"]
    finally:
        server.stop()
