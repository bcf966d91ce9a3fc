"""PNG bar charts of the tables (matplotlib, installed into the bench environment)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .results import Table, median

OURS = "#1f6feb"
CEILING = "#8b949e"
ORIGINAL = "#d29922"
OTHER = "#57606a"


def load_pyplot(path: Path) -> Any:
    """matplotlib.pyplot with the Agg backend, from ``path`` if not importable already."""
    if str(path) not in sys.path:
        sys.path.append(str(path))  # after the project's own: numpy comes from there if present
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(plt: Any, table: Table, key: str, out: Path, title: str) -> bool:
    rows = [r for r in table.rows if r.values.get(key)]
    if not rows:
        return False
    metric = table.metric(key)
    labels = [r.label for r in rows]
    meds = [median(r.values[key]) for r in rows]
    lows = [m - min(r.values[key]) for m, r in zip(meds, rows, strict=True)]
    highs = [max(r.values[key]) - m for m, r in zip(meds, rows, strict=True)]
    colours = []
    for r in rows:
        if r.ours:
            colours.append(OURS)
        elif r.label == table.ceiling:
            colours.append(CEILING)
        elif r.label == table.original:
            colours.append(ORIGINAL)
        else:
            colours.append(OTHER)
    height = 0.9 + 0.42 * len(rows)
    fig, ax = plt.subplots(figsize=(8.0, height), dpi=100)
    y = list(range(len(rows)))[::-1]
    ax.barh(y, meds, xerr=[lows, highs], color=colours, capsize=3, ecolor="#24292f")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlabel(
        f"{metric.header} — median, bars show min\u2013max"
        + ("" if metric.higher_is_better else " (lower is better)"),
        fontsize=9,
    )
    ax.set_title(title, fontsize=10)
    top = max(m + h for m, h in zip(meds, highs, strict=True)) or 1.0
    for yi, m in zip(y, meds, strict=True):
        ax.text(m + top * 0.01, yi, format(m, metric.fmt), va="center", fontsize=8)
    ax.set_xlim(0, top * 1.18)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return True
