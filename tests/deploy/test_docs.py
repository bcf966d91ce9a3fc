"""The Python examples in docs/deploy.md run as written and do what they say."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from dataserve import TransportError, create_app
from rawproto import BackgroundRawServer, RawDataClient
from tests.conftest import ROOT

from .helpers import metric, scrape

DOC = (ROOT / "docs" / "deploy.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.DOTALL)


def test_there_are_three_python_examples() -> None:
    assert len(BLOCKS) == 3


def test_the_metrics_hook_example_records_under_its_transport(serve: Any) -> None:
    (block,) = [b for b in BLOCKS if "transport_metrics" in b]
    server = serve(create_app(lambda resource, payload: None))
    before = scrape(server.url)
    exec(block, {})
    after = scrape(server.url)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, transport="native", **labels) - metric(
            before, name, transport="native", **labels
        )

    assert delta("dataserve_requests_total", resource="/xdata", status="200") == 1
    assert delta("dataserve_request_bytes_total") == 12
    assert delta("dataserve_response_bytes_total") == 48
    assert delta("dataserve_connections_total") == 1
    assert delta("dataserve_open_connections") == 0


def test_the_request_id_example_answers_with_the_callers_id(serve: Any) -> None:
    (block,) = [b for b in BLOCKS if "request_id()" in b]
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    server = serve(create_app(namespace["Handler"]))
    r = httpx.put(server.url + "/x", json=[1], headers={"x-request-id": "doc-1"})
    assert r.json() == {"request": "doc-1", "echo": [1]}


def test_the_resend_example_sends_again_on_a_new_connection() -> None:
    (block,) = [b for b in BLOCKS if "def send(" in b]
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    send = namespace["send"]
    first = BackgroundRawServer(echo).start()
    port = first.port
    client = RawDataClient(port, timeout=30)
    try:
        assert send(client, "/x", [1]) == [1]
        first.stop()  # the backend goes away under an open connection ...
        second = BackgroundRawServer(echo, port=port).start()  # ... and another takes its place
        try:
            assert send(client, "/x", [2]) == [2]
        finally:
            second.stop()
        with pytest.raises(TransportError):  # nobody there: fails after its tries
            send(client, "/x", [3])
    finally:
        client.close()


def echo(resource: str, payload: Any) -> Any:
    return payload
