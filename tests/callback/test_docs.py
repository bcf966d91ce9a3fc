"""Every Python example in docs/callback.md runs as written and does what it says."""

from __future__ import annotations

import errno
import re
import socket

import pytest

from ..conftest import ROOT, run_python

DOC = ROOT / "docs" / "callback.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def test_the_doc_has_its_examples() -> None:
    assert len(BLOCKS) == 4


def test_the_seed_example_runs() -> None:
    code = BLOCKS[0]
    assert "from dataserve.callback import httpserver_registercallback" in code
    if not _port_free(12345):
        pytest.skip("port 12345, which the example uses, is taken on this machine")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "200 hello Ada: POST /greet, 3 bytes\n"


@pytest.mark.parametrize("index", [1, 2])
def test_the_definitions_run(index: int) -> None:
    result = run_python(BLOCKS[index])
    assert result.returncode == 0, result.stderr


def test_the_asgi_transport_example_runs() -> None:
    result = run_python(BLOCKS[3])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "200 ping\n"
