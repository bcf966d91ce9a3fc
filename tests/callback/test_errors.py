"""Malformed arguments, unusable ports, unknown ids, bad answers and raising callbacks."""

from __future__ import annotations

import errno
import logging
import socket
import threading
from typing import Any

import httpx
import pytest

from dataserve.callback import (
    callback_app,
    httpserver_registercallback,
    httpserver_stopcallback,
)
from dataserve.core.limits import Limits
from dataserve.http.server import BackgroundLoop

from .conftest import Register, ok, register_on_port_0
from .test_messages import BAD_RESPONSES


def _callback(request: dict[str, Any]) -> dict[str, Any]:
    return ok()


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((["127.0.0.1", 8080], _callback), {}, TypeError, "must be a (host, port) tuple"),
        ((("127.0.0.1", 8080, 1), _callback), {}, ValueError, "not 3 items"),
        (((8080, "127.0.0.1"), _callback), {}, TypeError, "the host must be a str, not int"),
        ((("", 8080), _callback), {}, ValueError, "the host is empty"),
        ((("127.0.0.1", "8080"), _callback), {}, TypeError, "the port must be an int, not str"),
        ((("127.0.0.1", 0), _callback), {}, ValueError, "port must be in 1..65535, not 0"),
        ((("127.0.0.1", 70000), _callback), {}, ValueError, "not 70000"),
        ((("127.0.0.1", 8080), "callback"), {}, TypeError, "cbfunc must be callable, not str"),
        ((("127.0.0.1", 8080), None), {}, TypeError, "cbfunc must be callable, not NoneType"),
        ((("127.0.0.1", 8080), _callback), {"threads": 0}, ValueError, "at least 1, not 0"),
        ((("127.0.0.1", 8080), _callback), {"threads": "4"}, TypeError, "an int, not str"),
        ((("127.0.0.1", 8080), _callback), {"limits": {}}, TypeError, "a Limits, not dict"),
    ],
)
def test_malformed_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    # Nothing starts before the arguments are all checked: not even the loop
    # thread every server shares.
    before = set(threading.enumerate())
    with pytest.raises(error) as info:
        httpserver_registercallback(*args, **kwargs)
    assert message in str(info.value)
    assert set(threading.enumerate()) <= before  # nothing was started


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"threads": 0}, ValueError, "threads must be at least 1, not 0"),
        ({"threads": 2.5}, TypeError, "threads must be an int, not float"),
    ],
)
def test_malformed_callback_app_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        callback_app(_callback, **kwargs)
    with pytest.raises(TypeError, match="cbfunc must be callable, not int"):
        callback_app(42)  # type: ignore[arg-type]


def test_a_port_in_use_is_a_clear_error_and_leaves_nothing_running() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        BackgroundLoop.shared()  # the one loop thread every server shares, idle when unused
        before = set(threading.enumerate())
        with pytest.raises(OSError) as info:
            httpserver_registercallback(("127.0.0.1", port), _callback)
        assert info.value.errno == errno.EADDRINUSE
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in str(info.value)
        assert set(threading.enumerate()) <= before
        # The port still belongs to its holder.
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            conn, _ = holder.accept()
            conn.close()


def test_a_port_registered_twice_is_in_use(register: Register) -> None:
    _, port = register(_callback)
    with pytest.raises(OSError, match="Address already in use"):
        httpserver_registercallback(("127.0.0.1", port), _callback)
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "ok"


def test_an_unknown_host_is_a_clear_error() -> None:
    with pytest.raises(OSError, match=r"cannot listen on no-such-host\.invalid:8080"):
        httpserver_registercallback(("no-such-host.invalid", 8080), _callback)


@pytest.mark.parametrize("bad_id", [10**9, -1, "1", 1.0, True, None, [1]])
def test_stopping_an_unknown_id_is_a_key_error(bad_id: Any) -> None:
    with pytest.raises(KeyError, match="no callback server has the id"):
        httpserver_stopcallback(bad_id)


def test_stopping_twice_is_a_key_error() -> None:
    httpdid, port = register_on_port_0(_callback)
    httpserver_stopcallback(httpdid)
    with pytest.raises(KeyError, match=f"no callback server has the id {httpdid}"):
        httpserver_stopcallback(httpdid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")


def test_every_bad_response_is_a_500_naming_the_problem(
    register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    def callback(request: dict[str, Any]) -> Any:
        if request["path"] == "/good":
            return ok("good")
        return BAD_RESPONSES[int(request["path"][1:])][0]

    httpdid, port = register(callback)
    caplog.set_level(logging.ERROR, logger="dataserve.callback")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for i, (_, problem) in enumerate(BAD_RESPONSES):
            r = client.get(f"/{i}")
            assert r.status_code == 500
            assert r.text.startswith("invalid response from the callback: ")
            assert problem in r.text
            assert r.headers["content-type"] == "text/plain"
            assert client.get("/good").text == "good"  # the server keeps serving
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "dataserve.callback"]
    assert len(messages) == len(BAD_RESPONSES)
    for message, (_, problem) in zip(messages, BAD_RESPONSES, strict=True):
        assert message.startswith(f"callback {httpdid} answered GET /")
        assert problem in message


@pytest.mark.parametrize("is_async", [False, True])
def test_a_raising_callback_is_a_500(
    register: Register, caplog: pytest.LogCaptureFixture, is_async: bool
) -> None:
    def boom(request: dict[str, Any]) -> dict[str, Any]:
        if request["path"] == "/boom":
            raise ValueError("secret detail")
        return ok("fine")

    async def aboom(request: dict[str, Any]) -> dict[str, Any]:
        return boom(request)

    httpdid, port = register(aboom if is_async else boom)
    caplog.set_level(logging.ERROR, logger="dataserve.callback")
    r = httpx.post(f"http://127.0.0.1:{port}/boom")
    assert r.status_code == 500
    assert r.text == "the callback raised ValueError for POST /boom (see the server log)"
    assert "secret detail" not in r.text
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "fine"
    [record] = [rec for rec in caplog.records if rec.name == "dataserve.callback"]
    assert record.getMessage() == f"callback {httpdid} raised for POST /boom"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


def test_limits_are_per_registration(register: Register) -> None:
    _, small = register(_callback, limits=Limits(max_body_size=10))
    _, large = register(_callback)
    assert httpx.post(f"http://127.0.0.1:{small}/", content=b"x" * 11).status_code == 413
    assert httpx.post(f"http://127.0.0.1:{large}/", content=b"x" * 11).status_code == 200


def test_a_path_cannot_forge_a_log_line(
    register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(request: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(request["path"])

    _, port = register(boom)
    caplog.set_level(logging.ERROR, logger="dataserve.callback")
    r = httpx.get(f"http://127.0.0.1:{port}/a%0d%0aX-Injected:%201")
    assert r.status_code == 500
    assert "X-Injected" not in r.headers
    assert r.text == (
        "the callback raised ValueError for GET '/a\\r\\nX-Injected: 1' (see the server log)"
    )
    [record] = [rec for rec in caplog.records if rec.name == "dataserve.callback"]
    assert "\n" not in record.getMessage() and "\r" not in record.getMessage()


def test_a_callback_over_handler_timeout_is_a_504(
    register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        if request["path"] == "/hang":
            release.wait(30)
        return ok("late" if request["path"] == "/hang" else "next")

    httpdid, port = register(callback, limits=Limits(handler_timeout=0.3))
    caplog.set_level(logging.ERROR, logger="dataserve.callback")
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/hang")
        assert (r.status_code, r.text) == (504, "the callback did not answer within 0.3 s")
        [record] = [rec for rec in caplog.records if rec.name == "dataserve.callback"]
        assert record.getMessage() == f"callback {httpdid} did not answer GET /hang in 0.3 s"
    finally:
        # The thread cannot be stopped: it finishes, its answer is dropped,
        # and the server's one handler thread is free again.
        release.set()
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "next"


def test_a_callback_raising_timeout_error_is_a_500_not_a_504(register: Register) -> None:
    def callback(request: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("its own")

    _, port = register(callback)
    r = httpx.get(f"http://127.0.0.1:{port}/")
    assert (r.status_code, r.text) == (
        500,
        "the callback raised TimeoutError for GET / (see the server log)",
    )


def test_headers_over_the_limit_are_431_and_the_callback_is_not_called(
    register: Register,
) -> None:
    calls: list[str] = []

    def callback(request: dict[str, Any]) -> dict[str, Any]:
        calls.append(request["path"])
        return ok()

    _, port = register(callback, limits=Limits(max_header_size=4096))
    r = httpx.get(f"http://127.0.0.1:{port}/big", headers={"X-Big": "x" * 5000})
    assert r.status_code == 431
    assert calls == []
    assert httpx.get(f"http://127.0.0.1:{port}/small").status_code == 200
    assert calls == ["/small"]
