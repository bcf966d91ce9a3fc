"""A real browser for the console's tests: Debian's Chromium driven by Playwright.

No browser is downloaded: Playwright drives the system's ``chromium``. Without
it (or without Playwright) the browser tests skip, saying so; in CI
(``CI=true``) they fail, because ``.ci/run`` installs both.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.helpers import missing

# Headless, and nothing that reaches for the network on its own: the tests
# talk to a server on loopback and must not wait on anything else.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        missing("chromium is not installed (Debian package chromium)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module (Playwright's sync API owns the main
    thread's event loop while it runs, so it ends with the module)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[test]')")
    path = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
