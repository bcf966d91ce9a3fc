"""``docs/benchmarks.md`` and ``docs/bench/*.png`` from the stored results."""

from __future__ import annotations

import json
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from .results import Section, Table, fmt_ratio, fmt_value

VERSIONS = ("uvicorn", "starlette", "httptools", "uvloop", "httpx", "orjson")


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    import os

    return {
        "cpu": cpu or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def table_markdown(table: Table) -> list[str]:
    head = ["server / client"]
    for m in table.metrics:
        head.append(f"{m.header} median (min\u2013max)")
    ratio_metrics = [m for m in table.metrics if m.ratios]
    for m in ratio_metrics:
        suffix = f" ({m.header})" if len(ratio_metrics) > 1 else ""
        if table.ceiling:
            head.append(f"\u00d7 ceiling{suffix}")
        if table.original:
            head.append(f"\u00d7 original{suffix}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.rows:
        label = f"**{row.label}**" if row.ours else row.label
        if row.label == table.ceiling:
            label += " (ceiling)"
        cells = [label]
        for m in table.metrics:
            cells.append(fmt_value(row.values.get(m.key, []), m))
        for m in ratio_metrics:
            if table.ceiling:
                cells.append(fmt_ratio(table.ratio(row.label, table.ceiling, m.key)))
            if table.original:
                cells.append(fmt_ratio(table.ratio(row.label, table.original, m.key)))
        lines.append("| " + " | ".join(cells) + " |")
    lower = [m.header for m in table.metrics if not m.higher_is_better]
    if lower:
        lines.append("")
        lines.append(
            f"Lower is better for {', '.join(lower)}; a ratio is this row's median over the "
            "reference row's median, so below 1.00\u00d7 is faster there."
        )
    return lines


def section_markdown(section: Section, plot_names: dict[int, str]) -> list[str]:
    out = [f"## {section.title}", ""]
    if section.about:
        out += [section.about, ""]
    if section.measured_at:
        settings = ", ".join(f"{k}: {v}" for k, v in section.settings.items())
        out += [
            f"_Measured {section.measured_at} in {section.seconds:.0f} s"
            + (f"; {settings}" if settings else "")
            + "._",
            "",
        ]
    if section.skipped:
        out += [f"**Not measured:** {section.skipped}", ""]
    for i, table in enumerate(section.tables):
        if not table.rows:
            continue
        out += [f"### {table.title}", ""]
        out += table_markdown(table)
        out.append("")
        if i in plot_names:
            out += [f"![{table.title}](bench/{plot_names[i]})", ""]
    if section.targets:
        out += ["Targets:", ""]
        for t in section.targets:
            out.append(f"- {target_line(t)}")
        out.append("")
    if section.not_measured:
        out += ["Not measured:", ""]
        for what, why in section.not_measured:
            out.append(f"- {what}: {why}")
        out.append("")
    if section.notes:
        out += ["Notes from the run:", ""]
        out += [f"- {n}" for n in section.notes]
        out.append("")
    if section.limits:
        out += ["What limits us:", "", section.limits, ""]
    return out


def target_line(t: Any) -> str:
    sign = "≤" if t.at_most else "≥"
    if t.value is None:
        return f"{t.text}: goal {sign} {t.goal:g}{t.unit}, not measured"
    state = "met" if t.met else "**missed**"
    return f"{t.text}: {t.value:.2f}{t.unit} (goal {sign} {t.goal:g}{t.unit}) — {state}"


def write_report(
    out_dir: Path, sections: list[Section], info: dict[str, Any], pyplot: Any | None, command: str
) -> Path:
    """Write ``out_dir/benchmarks.md`` and its plots in ``out_dir/bench``."""
    plot_dir = out_dir / "bench"
    plot_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Benchmarks",
        "",
        "This page is written by the benchmark suite (`python -m bench`); do not edit it by "
        "hand, rerun the suite. Absolute numbers depend on the machine: compare the ratios, "
        "which are measured in the same run.",
        "",
        "## Machine and method",
        "",
        f"- Machine: {info['cpu']}, {info['cpus']} CPUs, {info['system']}, Python {info['python']}",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"- Pinning: {info.get('pinning', 'unknown')}",
        f"- Command: `{command}`",
        "- Each figure is the median of the runs (min\u2013max in brackets); the servers of a "
        "scenario run side by side and are measured in turn, A B C A B C, so drift on the "
        "machine hits all of them alike. Peers come from PyPI into `.bench-env/`, wrk and "
        "iperf3 from Debian; every server runs with its per-request access log off.",
        "- Ratios: `\u00d7 ceiling` divides by the ceiling row of the same table (the fastest "
        "thing that can be built on the same stack: a bare ASGI app, an asyncio echo "
        "server, the loopback limit), `\u00d7 original` by the original seed library.",
        "",
    ]
    targets = [(s, t) for s in sections for t in s.targets]
    if targets:
        lines += [
            "## Targets",
            "",
            "| scenario | target | goal | measured | |",
            "|---|---|---|---|---|",
        ]
        for s, t in targets:
            sign = "≤" if t.at_most else "≥"
            value = "not measured" if t.value is None else f"{t.value:.2f}{t.unit}"
            state = "" if t.met is None else ("met" if t.met else "**missed**")
            lines.append(
                f"| {s.title} | {t.text} | {sign} {t.goal:g}{t.unit} | {value} | {state} |"
            )
        lines.append("")
    for section in sections:
        plot_names: dict[int, str] = {}
        for i, table in enumerate(section.tables):
            if table.plot is None or pyplot is None or not table.rows:
                continue
            from .plots import bar_chart

            name = f"{section.name}-{slug(table.title)}.png"
            if bar_chart(
                pyplot, table, table.plot, plot_dir / name, f"{section.title}: {table.title}"
            ):
                plot_names[i] = name
        lines += section_markdown(section, plot_names)
    if pyplot is None:
        lines += ["_Plots were not drawn: matplotlib could not be installed._", ""]
    path = out_dir / "benchmarks.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def load_results(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"sections": {}}
    return data


def save_results(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
