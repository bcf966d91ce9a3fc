"""Every implementation module has a test module named after it.

The convention: a module ``<package>/<area>/<mod>.py`` is tested by
``tests/<folder>/test_<mod>.py`` or ``tests/<folder>/test_<area>_<mod>.py``,
where ``<area>`` is the name of the module's own folder (``engine`` for
``rawproto/engine/pump.py``, ``metrics`` for ``dataserve/core/metrics/totals.py``,
the package itself for a top-level module such as ``rawproto/cli.py``) and
``<folder>`` is one of the test folders ``FOLDERS`` gives that source folder.
So ``rawproto/engine/pump.py`` is tested by ``tests/rawproto/test_engine_pump.py``
and ``dataserve/core/estimate.py`` by ``tests/core/test_estimate.py``.

When one test module's name fits several modules (``tests/http/test_app.py``
fits ``dataserve/http/app.py`` and ``dataserve/app.py``), it stands for those
whose first test folder holds it (here ``dataserve/http/app.py``: the other
then needs ``test_dataserve_app.py``), or for all of them if none is.

A private module's leading underscore is dropped: ``rawproto/_blocking.py``
is tested by ``tests/rawproto/test_blocking.py``.

``__init__.py``, ``__main__.py`` and data files (``py.typed``, static assets)
need none. Other test modules (behaviour across modules, interop, load) are
welcome beside these; this only asks that each module has its own.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dataserve", "rawproto")

#: Source folder -> the test folders its modules' test modules live in.
FOLDERS: dict[str, tuple[str, ...]] = {
    "dataserve": ("core", "http", "deploy", "console"),
    "dataserve/core": ("core",),
    "dataserve/core/metrics": ("core",),
    "dataserve/http": ("http",),
    "dataserve/client": ("http",),
    "dataserve/callback": ("callback",),
    "dataserve/ops": ("deploy", "console"),
    "rawproto": ("rawproto", "tcpy_pyts"),
    "rawproto/engine": ("rawproto",),
    "rawproto/native": ("rawproto",),
    "rawproto/proto": ("rawproto", "tcpy_pyts"),
    "rawproto/tcpy": ("tcpy_pyts",),
    "rawproto/tinyproto": ("rawproto",),
}


def implementation_modules() -> list[Path]:
    """Every implementation module, relative to the repository root."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name not in ("__init__.py", "__main__.py"):
                found.append(path.relative_to(ROOT))
    return found


def expected_tests(module: Path) -> list[Path]:
    """The test modules that may stand for ``module`` under the convention."""
    folder = module.parent.as_posix()
    area = module.parent.name
    stem = module.stem.lstrip("_")
    names = (f"test_{stem}.py", f"test_{area}_{stem}.py")
    return [Path("tests", tests, name) for tests in FOLDERS[folder] for name in names]


def primary(module: Path, test: Path) -> bool:
    """Is ``test`` in the first test folder of ``module``'s source folder?"""
    return test.parent.name == FOLDERS[module.parent.as_posix()][0]


def own_test_modules() -> dict[str, list[Path]]:
    """Each module's own test modules, those that exist (see the docstring)."""
    claims: dict[Path, list[Path]] = {}
    for module in implementation_modules():
        for test in expected_tests(module):
            if (ROOT / test).is_file():
                claims.setdefault(test, []).append(module)
    owned: dict[str, list[Path]] = {m.as_posix(): [] for m in implementation_modules()}
    for test, modules in claims.items():
        owners = [m for m in modules if primary(m, test)] if len(modules) > 1 else modules
        for module in owners or modules:
            owned[module.as_posix()].append(test)
    return owned


def missing_tests() -> list[str]:
    return [module for module, tests in own_test_modules().items() if not tests]


def test_the_scan_sees_the_modules() -> None:
    modules = {m.as_posix() for m in implementation_modules()}
    assert "rawproto/engine/pump.py" in modules
    assert "dataserve/core/metrics/totals.py" in modules
    assert not any(m.endswith(("__init__.py", "__main__.py")) for m in modules)
    assert len(modules) > 90


def test_every_source_folder_has_test_folders() -> None:
    folders = {m.parent.as_posix() for m in implementation_modules()}
    assert folders <= FOLDERS.keys(), f"no test folder for {sorted(folders - FOLDERS.keys())}"
    for tests in {t for ts in FOLDERS.values() for t in ts}:
        assert (ROOT / "tests" / tests).is_dir(), tests


def test_the_convention_names() -> None:
    assert Path("tests/rawproto/test_engine_pump.py") in expected_tests(
        Path("rawproto/engine/pump.py")
    )
    assert Path("tests/core/test_estimate.py") in expected_tests(Path("dataserve/core/estimate.py"))
    assert Path("tests/rawproto/test_rawproto_cli.py") in expected_tests(Path("rawproto/cli.py"))
    assert Path("tests/rawproto/test_blocking.py") in expected_tests(Path("rawproto/_blocking.py"))


def test_a_test_module_fitting_several_modules_stands_for_the_one_whose_folder_it_is_in() -> None:
    owned = own_test_modules()
    assert Path("tests/http/test_app.py") in owned["dataserve/http/app.py"]
    assert Path("tests/http/test_app.py") not in owned["dataserve/app.py"]


def test_every_module_has_a_test_module() -> None:
    missing = missing_tests()
    assert not missing, "modules without a test module of their own:\n" + "\n".join(
        f"  {m}: write one of " + ", ".join(t.as_posix() for t in expected_tests(Path(m)))
        for m in missing
    )
