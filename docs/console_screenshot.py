"""Make ``docs/console.png``: the console of the seed example after some traffic.

Needs the test extras (Playwright) and Debian's ``chromium``; no browser is
downloaded. From the repository root::

    python docs/console_screenshot.py [seconds of traffic, default 90]
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

from dataserve import BackgroundServer, create_app
from dataserve.example import ExampleHandler

OUT = Path(__file__).resolve().parent / "console.png"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def traffic(url: str, seconds: float, stop: threading.Event) -> None:
    """Requests at a rate that swells and ebbs, a few of them to nothing (404)."""
    start = time.monotonic()
    with httpx.Client(base_url=url) as http:
        n = 0
        while not stop.is_set() and (elapsed := time.monotonic() - start) < seconds:
            http.put("/xdata", json=[n])
            if n % 40 == 0:
                http.put("/nope", json=n)
            if n % 15 == 0:
                http.put("/ydata")
            n += 1
            rate = 60 + 50 * math.sin(elapsed / 12)
            stop.wait(1 / rate)  # the pace of the traffic, not a synchronisation


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 90.0
    with BackgroundServer(create_app(ExampleHandler)) as server:
        stop = threading.Event()
        sender = threading.Thread(target=traffic, args=(server.url, seconds, stop))
        sender.start()
        sender.join()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url + "/")
            page.fill("#resource", "/xdata")
            page.fill("#payload", "[4, 5, 6]")
            page.click("#send")
            expect(page.locator("#reply-status")).to_have_text("200 OK")
            expect(page.locator("#rate-max")).to_have_text(re.compile("/s$"))
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
