"""The scenarios, in the issue's order. Each module has NAME, TITLE, PEERS and ``run(ctx)``."""

from __future__ import annotations

from types import ModuleType

from . import concurrency, http_large, http_small, raw_roundtrip, raw_throughput, scale, tcpy_pyts

ALL: list[ModuleType] = [
    http_small,
    http_large,
    raw_roundtrip,
    raw_throughput,
    tcpy_pyts,
    concurrency,
    scale,
]
BY_NAME = {m.NAME: m for m in ALL}
