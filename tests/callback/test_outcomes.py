"""What a callback that fails is answered: the one policy every transport follows.

A callback that hangs gets a 504 and its thread is replaced, so the server
goes on answering; an exception's type reaches the client, never its text,
unless the callback raised a ``DataServeError`` on purpose.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import pytest

import dataserve
from dataserve.core.limits import Limits

from .conftest import Register, ok


def test_a_callback_that_hangs_does_not_take_the_server_with_it(register: Register) -> None:
    release = threading.Event()
    calls: list[str] = []

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        calls.append(request["path"])
        if request["path"] == "/hang":
            release.wait(60)  # blocks its thread for good, as far as the test goes
        return ok(f"answered {request['path']}")

    # One thread, as by default: the hung call holds it.
    _, port = register(callback, limits=Limits(handler_timeout=0.5))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            first = client.get("/hang")
            assert (first.status_code, first.text) == (
                504,
                "the callback did not answer within 0.5 s",
            )
            for i in range(3):  # a replacement thread serves the later calls at once
                r = client.get(f"/next{i}")
                assert (r.status_code, r.text) == (200, f"answered /next{i}")
    finally:
        release.set()
    assert calls == ["/hang", "/next0", "/next1", "/next2"]


def test_when_every_thread_is_stuck_an_error_line_says_so(
    register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        release.wait(60)
        return ok()

    httpdid, port = register(callback, limits=Limits(handler_timeout=0.3, max_stuck_threads=1))
    caplog.set_level(logging.ERROR, logger="dataserve.handler")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/1").status_code == 504  # stuck, replaced
            assert not [r for r in caplog.records if r.name == "dataserve.handler"]
            assert client.get("/2").status_code == 504  # stuck too: none left
        [record] = [r for r in caplog.records if r.name == "dataserve.handler"]
        assert record.getMessage() == (
            f"every dataserve-callback-{httpdid} thread is stuck: 2 calls ran past "
            "handler_timeout (0.3 s) and no replacement is left (max_stuck_threads 1); "
            "calls wait until one returns: restart the process"
        )
    finally:
        release.set()


@pytest.mark.parametrize("is_async", [False, True])
def test_a_dataserve_error_raised_on_purpose_is_the_answer(
    register: Register, is_async: bool
) -> None:
    def callback(request: dict[str, Any]) -> dict[str, Any]:
        raise dataserve.BadRequest("the name is missing")

    async def acallback(request: dict[str, Any]) -> dict[str, Any]:
        raise dataserve.NotHandled("nothing lives at /x")

    _, port = register(acallback if is_async else callback)
    r = httpx.get(f"http://127.0.0.1:{port}/x")
    expected = (404, "nothing lives at /x") if is_async else (400, "the name is missing")
    assert (r.status_code, r.text) == expected


def test_any_other_exception_sends_its_type_not_its_text(register: Register) -> None:
    def callback(request: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("/etc/secret-config")

    _, port = register(callback)
    r = httpx.get(f"http://127.0.0.1:{port}/x")
    assert (r.status_code, r.text) == (
        500,
        "the callback raised KeyError for GET /x (see the server log)",
    )
