"""Wire compatibility with the original dataserve 0.1.0 from PyPI, both ways.

The original has the same import name, so it lives in its own ``--target``
folder and runs in a subprocess with ``PYTHONPATH`` pointing there.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from dataserve import BadRequest, HTTPDataClient, create_app
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


ORIGINAL_SERVER = textwrap.dedent(
    """
    import http.server
    from dataserve import HTTPDataHandler, run_http_server

    # Report the port the original bound (it prints the requested one, 0).
    _activate = http.server.HTTPServer.server_activate
    def server_activate(self):
        _activate(self)
        print('listening on 127.0.0.1:%d' % self.server_address[1], flush=True)
    http.server.HTTPServer.server_activate = server_activate

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
