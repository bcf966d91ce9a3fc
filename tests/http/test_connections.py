"""dataserve.http.connections: the protocol that counts open HTTP connections."""

from __future__ import annotations

from typing import Any

import pytest

from dataserve.core.metrics import metrics
from dataserve.http import connections
from dataserve.http.connections import CountedHttpProtocol, http_protocol
from dataserve.http.protocol import DataServeHttpProtocol
from dataserve.ops.config import OpsConfig


def test_the_protocol_counts_only_with_metrics_on() -> None:
    assert http_protocol(DataServeHttpProtocol, OpsConfig()) is CountedHttpProtocol
    assert http_protocol(DataServeHttpProtocol, OpsConfig(metrics=False)) is DataServeHttpProtocol
    assert http_protocol(DataServeHttpProtocol, None) is DataServeHttpProtocol


def test_another_protocol_is_never_replaced() -> None:
    class Mine:
        pass

    assert http_protocol(Mine, OpsConfig()) is Mine
    assert http_protocol("h11", OpsConfig()) == "h11"


def test_each_connection_steps_the_gauge_up_then_down(monkeypatch: Any) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        DataServeHttpProtocol, "connection_made", lambda self, t: calls.append("made")
    )
    monkeypatch.setattr(
        DataServeHttpProtocol, "connection_lost", lambda self, e: calls.append("lost")
    )
    gauge = metrics().open_connections.labels("http")
    start = gauge._value.get()
    accepted = metrics().connections.labels("http")._value.get()
    protocol = CountedHttpProtocol.__new__(CountedHttpProtocol)
    protocol.connection_made(object())  # type: ignore[arg-type]
    assert gauge._value.get() == start + 1
    assert metrics().connections.labels("http")._value.get() == accepted + 1
    protocol.connection_lost(None)
    assert gauge._value.get() == start and calls == ["made", "lost"]
    assert connections._http() is metrics().transport("http")


def test_the_gauge_steps_down_even_when_the_protocol_fails_on_close(monkeypatch: Any) -> None:
    def boom(self: Any, exc: Any) -> None:
        raise RuntimeError("closing failed")

    monkeypatch.setattr(DataServeHttpProtocol, "connection_made", lambda self, t: None)
    monkeypatch.setattr(DataServeHttpProtocol, "connection_lost", boom)
    gauge = metrics().open_connections.labels("http")
    start = gauge._value.get()
    protocol = CountedHttpProtocol.__new__(CountedHttpProtocol)
    protocol.connection_made(object())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="closing failed"):
        protocol.connection_lost(None)
    assert gauge._value.get() == start
