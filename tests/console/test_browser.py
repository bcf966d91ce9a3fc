"""The console in a real browser: status, live figures, requests sent from the page.

A real server on a loopback port and Debian's Chromium driven by Playwright
(see ``conftest.py``). Nothing sleeps: Playwright waits for the page to show
what is expected, within its timeout.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

import dataserve
from dataserve import create_app
from dataserve.example import ExampleHandler
from tests.conftest import run_python
from tests.http.handlers import Echo


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


class Watched:
    """A page, with every URL it asked for and every error it reported."""

    def __init__(self, context: Any) -> None:
        self.page = context.new_page()
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.urls.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )


def open_console(browser: Any, url: str, **context: Any) -> Watched:
    watched = Watched(browser.new_context(viewport={"width": 1280, "height": 1000}, **context))
    watched.page.goto(url)
    return watched


def send(page: Any, resource: str, kind: str, payload: str = "") -> None:
    page.fill("#resource", resource)
    page.select_option("#kind", kind)
    if kind in ("json", "text"):
        page.fill("#payload", payload)
    page.click("#send")


def number(page: Any, selector: str) -> int:
    return int(page.text_content(selector))


def test_status_live_figures_and_a_json_request(browser: Any, serve: Any, tmp_path: Path) -> None:
    server = serve(create_app(ExampleHandler))
    watched = open_console(browser, server.url + "/")  # GET / leads to the console
    page = watched.page
    assert page.url == server.url + "/_dataserve/"

    # The status.
    expect(page.locator("#state")).to_have_text("ready")
    expect(page.locator("#version")).to_have_text(dataserve.__version__)
    expect(page.locator("#handler")).to_have_text("dataserve.example.ExampleHandler")
    expect(page.locator("#workers")).to_have_text("1")
    expect(page.locator("#listeners")).to_contain_text(server.url)
    expect(page.locator("#limits")).to_contain_text("max_body_size")
    expect(page.locator("#uptime")).to_have_text(re.compile(r"^\d+ s$"))

    # The live figures, and a request sent from the console.
    expect(page.locator("#requests")).to_have_text(re.compile(r"^\d+$"))
    before = number(page, "#requests")
    send(page, "/xdata", "json", "[4, 5, 6]")
    expect(page.locator("#reply-status")).to_have_text("200 OK")
    expect(page.locator("#reply-type")).to_have_text("application/json")
    assert json.loads(page.text_content("#reply") or "") == [1, 2, 3, 4, 5, 6]
    expect(page.locator("#reply-time")).to_have_text(re.compile(r"^\d+\.\d ms$"))
    # The counter moves on the next refresh, and the resource gets its row.
    page.wait_for_function(
        "before => Number(document.getElementById('requests').textContent) > before", arg=before
    )
    expect(page.locator("#by-resource")).to_contain_text("/xdata")
    expect(page.locator("#by-status")).to_contain_text("200")

    # The equivalent lines do what the console did.
    curl = page.text_content("#curl") or ""
    assert curl == (
        "curl -X PUT -H 'Content-Type: application/json' --data-binary '[4, 5, 6]' "
        f"'{server.url}/xdata'"
    )
    out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout) == [1, 2, 3, 4, 5, 6], out.stderr
    python = page.text_content("#python") or ""
    assert f"HTTPDataClient({server.port}, 'http://127.0.0.1:')" in python
    result = run_python(python)
    assert result.stdout == "[1, 2, 3, 4, 5, 6]\n", result.stderr

    # The chart gets its points from the history: one a second.
    expect(page.locator("#rate-max")).to_have_text(re.compile(r"/s$"), timeout=15_000)

    page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
    assert (tmp_path / "console.png").stat().st_size > 10_000
    assert watched.errors == []  # no script error, nothing the policy refused
    assert all(url.startswith(server.url + "/") for url in watched.urls), watched.urls


def payload_or_resource(resource: str, payload: Any) -> Any:
    """The payload back; with none (no body, or the clients' empty text for
    ``None``), the resource as the handler got it."""
    return resource if payload is None or payload == "" else payload


def test_markup_in_a_resource_and_a_reply_is_shown_as_text(browser: Any, serve: Any) -> None:
    server = serve(create_app(payload_or_resource))
    page = open_console(browser, server.url + "/_dataserve/").page
    expect(page.locator("#state")).to_have_text("ready")
    resource = "/<script>window.injected = 'resource'</script>"
    reply = "<script>window.injected = 'reply'</script><img src=x onerror=\"window.injected=1\">"
    send(page, resource, "text", reply)
    expect(page.locator("#reply-status")).to_have_text("200 OK")
    expect(page.locator("#reply-type")).to_have_text("text/plain")
    # As text, character for character: the reply, and the resource in the
    # table of resources (answered, it has a label of its own).
    assert page.text_content("#reply") == reply
    cell = page.locator("#by-resource td", has_text=resource)
    expect(cell).to_have_count(1)
    assert cell.text_content() == resource
    # The handler got the resource as typed (the page percent-encodes the
    # path), and so it does from the curl and Python lines, quotes and all.
    send(page, resource, "none")
    expect(page.locator("#reply")).to_have_text(resource)
    curl = subprocess.run(
        ["bash", "-c", page.text_content("#curl") or ""], capture_output=True, text=True, timeout=60
    )
    assert curl.stdout == resource, curl.stderr
    python = run_python(page.text_content("#python") or "")
    assert python.stdout == resource + "\n", python.stderr
    send(page, "/json", "json", '{"html": "<b>bold</b>"}')
    expect(page.locator("#reply")).to_contain_text('"html": "<b>bold</b>"')
    # No element came out of any of it, and nothing ran.
    for where in ("#reply", "#by-resource", "#curl", "#python"):
        assert page.locator(f"{where} script, {where} img, {where} b").count() == 0
    assert page.evaluate("typeof window.injected") == "undefined"


def test_a_file_payload_and_a_binary_reply(browser: Any, serve: Any) -> None:
    server = serve(create_app(Echo))
    page = open_console(browser, server.url + "/_dataserve/").page
    page.fill("#resource", "/blob")
    page.select_option("#kind", "file")
    data = bytes(range(256)) * 2
    page.set_input_files(
        "#file", {"name": "data.bin", "mimeType": "application/octet-stream", "buffer": data}
    )
    page.click("#send")
    expect(page.locator("#reply-type")).to_have_text("application/octet-stream")
    expect(page.locator("#reply-size")).to_have_text("512 B")
    dump = page.text_content("#reply") or ""
    assert dump.startswith("000000  00 01 02 03") and dump.endswith("256 more bytes")
    assert "--data-binary @'data.bin'" in (page.text_content("#curl") or "")
    assert "client.send('/blob', open('data.bin', 'rb').read())" in (
        page.text_content("#python") or ""
    )


def test_a_server_with_a_token(browser: Any, serve: Any) -> None:
    server = serve(create_app(Echo, token="s3cret"))
    from playwright.sync_api import Error as PlaywrightError

    # Without the token the page is refused (a browser with a window would
    # ask for it; a headless one gives up).
    bare = Watched(browser.new_context())
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        bare.page.goto(server.url + "/_dataserve/")
    # Given as the password of the browser's prompt, it opens the page.
    page = open_console(
        browser,
        server.url + "/_dataserve/",
        http_credentials={"username": "ops", "password": "s3cret"},
    ).page
    expect(page.locator("#state")).to_have_text("ready")
    expect(page.locator("#token-field")).to_be_visible()
    # Data requests need it as Bearer: the page asks for it.
    send(page, "/echo", "json", "[1]")
    expect(page.locator("#reply-status")).to_have_text("401 Unauthorized")
    page.fill("#token", "s3cret")
    send(page, "/echo", "json", "[2]")
    expect(page.locator("#reply-status")).to_have_text("200 OK")
    assert json.loads(page.text_content("#reply") or "") == [2]
    curl = page.text_content("#curl") or ""
    assert '-H "Authorization: Bearer $DATASERVE_TOKEN"' in curl and "s3cret" not in curl
    assert "s3cret" not in (page.text_content("#python") or "")
