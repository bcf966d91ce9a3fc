"""What a scenario measured: tables of figures (samples), targets and notes.

Everything here is plain data that round-trips through JSON, so the report
can be rebuilt from ``docs/bench/results.json`` when one scenario is re-run.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


def median(samples: list[float]) -> float:
    return statistics.median(samples)


@dataclass
class Metric:
    """One measured quantity: a column of a table."""

    key: str
    header: str
    unit: str
    higher_is_better: bool = True
    fmt: str = ",.0f"
    ratios: bool = True  # print ratios to the ceiling and the original for it


@dataclass
class Row:
    label: str
    values: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""
    ours: bool = False


@dataclass
class Table:
    title: str
    metrics: list[Metric]
    rows: list[Row] = field(default_factory=list)
    ceiling: str | None = None  # label of the row that is the ceiling
    original: str | None = None  # label of the original seed library's row
    plot: str | None = None  # metric key to plot, None for no plot

    def row(self, label: str) -> Row:
        for row in self.rows:
            if row.label == label:
                return row
        row = Row(label)
        self.rows.append(row)
        return row

    def add(self, label: str, key: str, value: float, *, ours: bool = False) -> None:
        row = self.row(label)
        row.ours = row.ours or ours
        row.values.setdefault(key, []).append(value)

    def median(self, label: str, key: str) -> float | None:
        for row in self.rows:
            if row.label == label and row.values.get(key):
                return median(row.values[key])
        return None

    def ratio(self, label: str, reference: str | None, key: str) -> float | None:
        """median(label) / median(reference) for ``key``; None if either is missing."""
        if reference is None:
            return None
        a, b = self.median(label, key), self.median(reference, key)
        if a is None or not b:
            return None
        return a / b

    def metric(self, key: str) -> Metric:
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(key)


@dataclass
class Target:
    """A goal from the issue, checked against this run's ratios."""

    text: str
    value: float | None  # the measured ratio (or figure); None when not measured
    goal: float
    at_most: bool = False  # True: value must be <= goal
    unit: str = "\u00d7"

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.goal if self.at_most else self.value >= self.goal


@dataclass
class Section:
    name: str
    title: str
    about: str = ""
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_measured: list[tuple[str, str]] = field(default_factory=list)
    limits: str = ""  # what limits us, and what was tried, for the report
    settings: dict[str, Any] = field(default_factory=dict)
    measured_at: str = ""
    seconds: float = 0.0
    skipped: str = ""  # the whole scenario could not run: why

    def table(self, title: str) -> Table:
        for t in self.tables:
            if t.title == title:
                return t
        raise KeyError(title)

    def skip(self, what: str, reason: str) -> None:
        self.not_measured.append((what, reason))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        tables = [
            Table(
                title=t["title"],
                metrics=[Metric(**m) for m in t["metrics"]],
                rows=[Row(**r) for r in t["rows"]],
                ceiling=t.get("ceiling"),
                original=t.get("original"),
                plot=t.get("plot"),
            )
            for t in data.get("tables", [])
        ]
        return cls(
            name=data["name"],
            title=data["title"],
            about=data.get("about", ""),
            tables=tables,
            targets=[Target(**t) for t in data.get("targets", [])],
            notes=list(data.get("notes", [])),
            not_measured=[(a, b) for a, b in data.get("not_measured", [])],
            limits=data.get("limits", ""),
            settings=dict(data.get("settings", {})),
            measured_at=data.get("measured_at", ""),
            seconds=float(data.get("seconds", 0.0)),
            skipped=data.get("skipped", ""),
        )


def fmt_value(samples: list[float], metric: Metric, spread: bool = True) -> str:
    if not samples:
        return "\u2013"
    med = format(median(samples), metric.fmt)
    if not spread or len(samples) < 2:
        return med
    return f"{med} ({format(min(samples), metric.fmt)}\u2013{format(max(samples), metric.fmt)})"


def fmt_ratio(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.2f}\u00d7"
