"""Run the atheris fuzz targets, each for a while, offline.

    python fuzz/run.py --seconds 60            # every target, 60 s each
    python fuzz/run.py --seconds 5 tcpy pyts   # some of them
    python fuzz/run.py --list

Each target (``fuzz/fuzz_<name>.py``) runs in its own subprocess under
libFuzzer, with its corpus in ``fuzz/corpus/<name>/``, seeded with the valid
inputs the target generates (``seeds()``) and kept between runs. A crash (an
exception the parser must not raise, a property that fails, a hang) is saved
in ``fuzz/crashes/<name>/``; the run goes on with the other targets and exits
with status 1. Reproduce one with ``python -m fuzz.fuzz_<name> CRASH_FILE``
from the repository root, then keep it as a regression test in
``tests/fuzz/test_regressions.py``.

atheris comes with the ``fuzz`` extra (``pip install -e '.[fuzz]'``). Without
it this prints why and exits 0, so a platform without atheris wheels skips
fuzzing instead of failing.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def targets() -> list[str]:
    return sorted(p.stem.removeprefix("fuzz_") for p in HERE.glob("fuzz_*.py"))


def write_seeds(name: str, corpus: Path) -> int:
    """Write the target's valid inputs into its corpus; how many were new."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"fuzz.fuzz_{name}")
    corpus.mkdir(parents=True, exist_ok=True)
    new = 0
    for seed in module.seeds():
        path = corpus / f"seed-{hashlib.sha1(seed).hexdigest()}"
        if not path.exists():
            path.write_bytes(seed)
            new += 1
    return new


def fuzz(name: str, seconds: int, extra: list[str]) -> tuple[bool, Path]:
    """Run one target for ``seconds``; ``(passed, log file)``."""
    corpus = HERE / "corpus" / name
    crashes = HERE / "crashes" / name
    crashes.mkdir(parents=True, exist_ok=True)
    write_seeds(name, corpus)
    log = crashes.parent / f"{name}.log"
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    command = [
        sys.executable,
        "-m",
        "fuzz._main",
        name,
        f"-max_total_time={seconds}",
        "-timeout=10",  # one input taking 10 s is a hang
        "-rss_limit_mb=2048",
        "-max_len=16384",
        f"-artifact_prefix={crashes}{os.sep}",
        *extra,
        str(corpus),
    ]
    with log.open("w") as out:
        # libFuzzer stops on its own after max_total_time; the margin covers
        # start-up and instrumenting the modules.
        proc = subprocess.run(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 120
        )
    return proc.returncode == 0, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="name", help="targets to run (default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="seconds per target (default 60)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument(
        "--libfuzzer", action="append", default=[], metavar="FLAG", help="extra libFuzzer flag"
    )
    args = parser.parse_args(argv)
    available = targets()
    if args.list:
        print("\n".join(available))
        return 0
    unknown = sorted(set(args.names) - set(available))
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)} (known: {', '.join(available)})")
    if importlib.util.find_spec("atheris") is None:
        print(
            "fuzz: atheris is not installed (pip install -e '.[fuzz]'); skipping the fuzz targets",
            file=sys.stderr,
        )
        return 0
    failed = []
    for name in args.names or available:
        started = time.monotonic()
        passed, log = fuzz(name, args.seconds, args.libfuzzer)
        took = time.monotonic() - started
        runs = _last_stat(log)
        print(f"fuzz {name}: {'ok' if passed else 'CRASH'} ({took:.0f} s{runs})", flush=True)
        if not passed:
            failed.append(name)
            print(_tail(log), file=sys.stderr)
    if failed:
        print(
            f"fuzz: crashes in {', '.join(failed)}: inputs in {HERE / 'crashes'}; reproduce with "
            "python -m fuzz.fuzz_<name> FILE and add them to tests/fuzz/test_regressions.py",
            file=sys.stderr,
        )
        return 1
    return 0


def _last_stat(log: Path) -> str:
    """``, N inputs`` from libFuzzer's last status line, if there is one."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("#") and "exec/s" in line:
            return f", {line.split()[0].lstrip('#')} inputs"
    return ""


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
