"""Seed 001's example, as written, against this project."""

from __future__ import annotations

import signal
import textwrap

from dataserve.http.server import bind_socket
from tests.conftest import ServerProcess, run_python

SERVER = textwrap.dedent(
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

    run_http_server(5001, MyDataHandler)
    """
)

CLIENT = textwrap.dedent(
    """
    from dataserve import HTTPDataClient

    client = HTTPDataClient(port=5001)
    ret = client.send('/xdata', [4, 5, 6])
    print(repr(ret))
    ret = client.send('/ydata')
    print(repr(ret))
    """
)


def test_seed_example_runs_as_written(tmp_path: object) -> None:
    import sys
    from pathlib import Path

    # The seed hard-codes port 5001; make sure nothing else holds it.
    bind_socket("127.0.0.1", 5001).close()
    path = Path(str(tmp_path)) / "server.py"
    path.write_text(SERVER)
    server = ServerProcess([sys.executable, str(path)])
    try:
        assert server.port == 5001
        assert "Serving data on http://127.0.0.1:5001" in server.lines[0]
        result = run_python(CLIENT)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["[1, 2, 3, 4, 5, 6]", "2"]
    finally:
        server.proc.send_signal(signal.SIGINT)  # Ctrl-C, as the seed says
        assert server.proc.wait(30) == 0
