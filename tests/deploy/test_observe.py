"""dataserve.ops.observe: request ids, metrics and access lines around each data request."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dataserve.core.metrics import Metrics
from dataserve.ops.config import OpsConfig
from dataserve.ops.observe import CLIENT_CLOSED, Observer, observer_for
from dataserve.ops.requestid import request_id


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "PUT",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "http_version": "1.1",
        "headers": list(headers),
        "client": ("127.0.0.1", 5000),
    }


def test_nothing_on_means_no_observer() -> None:
    off = OpsConfig(request_id=False, metrics=False, access_log=False, console=False)
    assert observer_for(off) is None
    assert observer_for(off.replace(access_log=True)) is not None


def test_the_console_tracks_requests_in_flight() -> None:
    observer = observer_for(OpsConfig(metrics=False))
    assert observer is not None and observer.in_flight == set()
    seen = observer.begin(scope())
    assert observer.in_flight == {seen}
    observer.end(scope(), "/x", seen, 200, 0, 0)
    assert observer.in_flight == set()
    untracked = observer_for(OpsConfig(metrics=False, console=False))
    assert untracked is not None and untracked.in_flight is None


def test_a_request_takes_the_clients_sane_id_for_its_duration() -> None:
    observer = Observer(request_id=True, metrics=None, log=False)
    s = scope((b"x-request-id", b"abc-123"))
    seen = observer.begin(s)
    assert seen.request_id == "abc-123" and request_id() == "abc-123"
    assert seen.headers == [(b"x-request-id", b"abc-123")]
    observer.end(s, "/x", seen, 200, 1, 2)
    assert request_id() is None


def test_an_insane_id_is_replaced_and_none_is_generated() -> None:
    observer = Observer(request_id=True, metrics=None, log=False)
    for headers in [((b"x-request-id", b"bad id\r\n"),), ()]:
        s = scope(*headers)
        seen = observer.begin(s)
        assert seen.request_id and seen.request_id != "bad id\r\n"
        observer.end(s, "/x", seen, 200, 0, 0)


def test_without_request_ids_there_is_no_header_and_no_id() -> None:
    observer = Observer(request_id=False, metrics=None, log=False)
    seen = observer.begin(scope((b"x-request-id", b"abc")))
    assert seen.request_id is None and seen.headers == [] and request_id() is None
    observer.end(scope(), "/x", seen, 200, 0, 0)


def test_metrics_see_status_and_bytes() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.flushing = True
    observer = Observer(request_id=False, metrics=m.transport("http"), log=False)
    seen = observer.begin(scope())
    observer.end(scope(), "/x", seen, CLIENT_CLOSED, 10, 0)
    t = m.totals()
    assert t.by_status == {499: 1} and t.bytes_in == 10 and t.errors == 1


def test_an_access_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    observer = Observer(request_id=True, metrics=None, log=True)
    with caplog.at_level(logging.INFO):
        seen = observer.begin(scope())
        observer.end(scope(), "/x", seen, 201, 3, 4)
    lines = [r.getMessage() for r in caplog.records]
    assert any("PUT /x" in line and "201" in line for line in lines), lines
