"""Decoding never holds the event loop: a probe of the loop's own route
(``/_dataserve/health``) keeps answering while large bodies are decoded.

Large bodies are decoded off the loop (on the handler's thread, or a worker
thread for ``async def`` handlers: ``dataserve.core.exchange``) and a piece
at a time (``dataserve.core.pieces``: a single ``orjson.loads`` of 32 MiB
holds the interpreter, and so the loop, for a third of a second). The bound
asserted is three times the 50 ms target, for loaded CI machines; the
figures measured are in the closing notes and docs/security.md.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import httpx
import msgpack
import orjson
import pytest

from tests.conftest import ServerProcess
from tests.probe import Probe

MiB = 1 << 20
BOUND = 0.150  # seconds: the probe's p99, with a margin over the 50 ms target

pytestmark = pytest.mark.slow

BODIES = {
    "JSON array of floats, 32 MiB": (
        "application/json",
        orjson.dumps([1.2345678] * (32 * MiB // 10)),
    ),
    "text, 64 MiB": ("text/plain; charset=utf-8", "hello wörld ".encode() * (64 * MiB // 13)),
    "msgpack array of 65,536 records, 16 MiB": (
        "application/msgpack",
        msgpack.packb([{"name": "x" * 200, "value": i} for i in range(65_536)]),
    ),
}


@pytest.fixture(scope="module", params=["AsyncSizes", "Sizes"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        [sys.executable, "-m", "dataserve", "serve", f"tests.http.handlers:{request.param}",
         "--port", "0", "--log-level", "warning"]
    )  # fmt: skip
    yield proc
    assert proc.stop() == 0


@pytest.mark.parametrize("name", list(BODIES))
def test_the_loop_answers_while_a_large_body_is_decoded(server: ServerProcess, name: str) -> None:
    content_type, body = BODIES[name]
    with Probe(server.port, health=True) as probe, httpx.Client(timeout=120) as http:
        deadline = time.monotonic() + 4
        sent = 0
        while time.monotonic() < deadline or sent < 2:
            r = http.put(f"{server.url}/x", content=body, headers={"content-type": content_type})
            assert r.status_code == 200, r.text
            sent += 1
    assert not probe.failures
    assert len(probe.latencies) > 20
    assert probe.p99 < BOUND, f"{name}, {sent} bodies: {probe.summary()}"


HOSTILE = {
    "punycode text (quadratic to decode)": (
        "text/plain; charset=punycode",
        b"a" * MiB,
        415,
        "is not accepted",
    ),
    "30 MB JSON of empty arrays": (
        "application/json",
        b"[" + b"[]," * (10 * MiB) + b"[]]",
        413,
        "would take about",
    ),
    "16 MB msgpack of empty arrays": (
        "application/msgpack",
        b"\xdc\x01\x00" + (b"\xdc\xff\xff" + b"\x90" * 65_535) * 256,
        413,
        "would take more decoded",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bodies_are_refused_without_holding_the_loop(
    server: ServerProcess, name: str
) -> None:
    content_type, body, status, message = HOSTILE[name]
    with Probe(server.port, health=True) as probe, httpx.Client(timeout=120) as http:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            r = http.put(f"{server.url}/x", content=body, headers={"content-type": content_type})
            assert r.status_code == status, r.text
            assert message in r.text
    assert len(probe.latencies) > 20
    assert not probe.failures
    assert probe.p99 < BOUND, f"{name}: {probe.summary()}"
