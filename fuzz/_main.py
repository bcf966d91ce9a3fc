"""Run one fuzz target under atheris: ``python -m fuzz._main NAME [libFuzzer args]``.

Coverage feedback needs the parsers' bytecode instrumented, which atheris
does as modules are imported; so this bootstrap imports the target (and with
it ``rawproto``, ``dataserve`` and the driver) inside
``atheris.instrument_imports``, before anything else has imported them.
Instrumenting only these packages keeps start-up to a second or two.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

INSTRUMENTED = ["rawproto", "dataserve", "fuzz"]


def exec_target(name: str) -> NoReturn:
    """Replace this process by the bootstrap for ``name`` (``python -m fuzz.fuzz_NAME``)."""
    os.execv(sys.executable, [sys.executable, "-m", "fuzz._main", name, *sys.argv[1:]])


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m fuzz._main NAME [libFuzzer flags] [corpus or files]")
    name = argv.pop(1)
    atheris = importlib.import_module("atheris")  # the fuzz extra; untyped

    with atheris.instrument_imports(include=INSTRUMENTED):
        module = importlib.import_module(f"fuzz.fuzz_{name}")
    atheris.Setup(argv, module.check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(list(sys.argv))
