"""``python -m bench [SCENARIO ...]``: run the benchmarks and write the report."""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .context import Context
from .env import ROOT, Env, NotMeasured, Pinning, raise_fd_limit
from .report import load_results, machine, save_results, write_report
from .results import Section, fmt_ratio, fmt_value
from .scenarios import ALL, BY_NAME


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(m.NAME for m in ALL)
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure dataserve against its peers and write docs/benchmarks.md.",
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"any of: {names} (default: all)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="about a second per scenario, to check the suite runs"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="runs per figure (default 3, smoke 1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where benchmarks.md and bench/ go (default docs/; smoke: a temporary folder)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="install every peer (pip, into .bench-env/) and tool (apt-get) and exit",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="install nothing: what is missing is reported as not measured (the tests' way)",
    )
    return parser


def print_section(section: Section) -> None:
    print(f"\n== {section.title}")
    if section.skipped:
        print(f"   not measured: {section.skipped}")
    for table in section.tables:
        if not table.rows:
            continue
        print(f"   {table.title}")
        width = max(len(r.label) for r in table.rows) + 2
        for row in table.rows:
            cells = []
            for m in table.metrics:
                cells.append(f"{m.header} {fmt_value(row.values.get(m.key, []), m):>26}")
                if not m.ratios:
                    continue
                for name, ref in (("ceiling", table.ceiling), ("original", table.original)):
                    if ref:
                        ratio = fmt_ratio(table.ratio(row.label, ref, m.key))
                        cells.append(f"\u00d7{name} {ratio:>7}")
            print(f"   {'*' if row.ours else ' '} {row.label:{width}}" + "  ".join(cells))
    for what, why in section.not_measured:
        print(f"   not measured: {what}: {why}")
    for t in section.targets:
        from .report import target_line

        print(f"   target: {target_line(t).replace('**', '')}")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"bench: stopped by signal {signum}")  # runs the finally blocks: servers stop


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = _parser().parse_args(argv)
    if args.list:
        for m in ALL:
            print(f"{m.NAME:16} {m.TITLE}")
        return 0
    if args.prepare:
        problems = Env().prepare_all()
        for problem in problems:
            print(f"python -m bench: {problem}", file=sys.stderr)
        return 1 if problems else 0
    unknown = [n for n in args.scenarios if n not in BY_NAME]
    if unknown:
        print(
            f"python -m bench: unknown scenario {', '.join(unknown)}; try --list", file=sys.stderr
        )
        return 2
    chosen = [BY_NAME[n] for n in args.scenarios] if args.scenarios else list(ALL)
    rounds = args.rounds or (1 if args.smoke else 3)
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else ROOT / "docs"
    out = out.resolve()

    raise_fd_limit()
    pin = Pinning.detect()
    if pin.load is not None:
        # The suite itself waits on its load generators: keep it off the server's CPU.
        os.sched_setaffinity(0, {int(pin.load)})
    env = Env(install=not args.no_install)
    print(f"bench: {len(chosen)} scenario(s), {rounds} round(s), {pin.describe()}", flush=True)
    env.prepare({p for m in chosen for p in m.PEERS} | {"matplotlib"})

    results_path = out / "bench" / "results.json"
    results = load_results(results_path)
    info = machine()
    info["pinning"] = pin.describe()
    failed = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for module in chosen:
            ctx = Context(env=env, pin=pin, tmp=Path(tmp), smoke=args.smoke, rounds=rounds)
            print(f"\n== {module.TITLE} ({module.NAME})", flush=True)
            began = time.monotonic()
            try:
                section = module.run(ctx)
            except NotMeasured as exc:
                section = Section(module.NAME, module.TITLE, skipped=str(exc))
            except Exception as exc:  # the report says which scenario broke and how
                traceback.print_exc()
                section = Section(
                    module.NAME, module.TITLE, skipped=f"the scenario failed: {exc!r}"
                )
                failed.append(module.NAME)
            section.seconds = time.monotonic() - began
            section.measured_at = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
            if args.smoke:
                section.settings["mode"] = "smoke (no targets apply)"
            print_section(section)
            results["sections"][module.NAME] = section.to_json()
    results["machine"] = info
    save_results(results_path, results)
    sections = []
    for m in ALL:
        if m.NAME in results["sections"]:
            section = Section.from_json(results["sections"][m.NAME])
            # The prose comes from the code as it is now; the figures from the run.
            section.title, section.about, section.limits = m.TITLE, m.ABOUT, m.LIMITS
            sections.append(section)
    pyplot = None
    try:
        from .plots import load_pyplot

        pyplot = load_pyplot(env.peer("matplotlib"))
    except (NotMeasured, ImportError) as exc:
        print(f"bench: no plots: {exc}", flush=True)
    command = (
        "python -m bench"
        + (" --smoke" if args.smoke else "")
        + (" " + " ".join(args.scenarios) if args.scenarios else "")
    )
    report = write_report(out, sections, info, pyplot, command)
    print(f"\nbench: wrote {report}", flush=True)
    if failed:
        print(f"bench: scenarios that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
