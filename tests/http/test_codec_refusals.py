"""The codec's refusals over HTTP, against a real server.

Linear-time charsets only (415), the budget for decoded JSON and msgpack
(413), one rule for JSON numbers (400), and NaN never sent as null, by the
server (500) or by our clients (``EncodeError`` before anything is sent).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import pytest

from dataserve import AsyncHTTPDataClient, HTTPDataClient, HTTPDataHandler, create_app
from dataserve.core.codec import default_registry
from dataserve.core.errors import EncodeError
from dataserve.core.limits import Limits
from dataserve.http.server import BackgroundServer

MiB = 1024 * 1024
ADVICE = (
    "send large or dense data as bytes (application/octet-stream) "
    "or as a numpy array (application/x-npy)"
)
ACCEPTED = (
    "a text/plain body may be UTF-8, UTF-16 or UTF-32 (-le, -be, utf-8-sig), ASCII, "
    "Latin-1 or a single-byte code page (cp1252, iso-8859-2..16, koi8-r, mac-roman, cp437...)"
)
NAN = (
    "JSON has no NaN or Infinity (RFC 8259, section 6); send None or a string instead, "
    "or the numbers as a numpy array (application/x-npy)"
)


class Recording(HTTPDataHandler):
    """Echoes; counts the calls, so a refusal can show the handler never ran."""

    def __init__(self) -> None:
        self.calls = 0

    def handle_request(self, resource: str, payload: Any) -> Any:
        self.calls += 1
        if resource == "/nan":
            return {"mean": math.nan}
        if resource == "/len":
            return len(payload)
        return payload


@pytest.fixture
def handler() -> Recording:
    return Recording()


@pytest.fixture
def server(serve: Any, handler: Recording) -> BackgroundServer:
    return serve(create_app(handler))  # type: ignore[no-any-return]


def put(server: BackgroundServer, content_type: str, body: bytes, path: str = "/echo") -> Any:
    return httpx.put(
        server.url + path, content=body, headers={"content-type": content_type}, timeout=60
    )


def assert_refused(
    server: BackgroundServer, handler: Recording, response: Any, status: int, message: str
) -> None:
    assert (response.status_code, response.text) == (status, message)
    assert handler.calls == 0
    alive = put(server, "application/json", b"[1]")
    assert (alive.status_code, alive.json()) == (200, [1])
    handler.calls = 0


# --- item 2: only linear-time text decoders ------------------------------------------


@pytest.mark.parametrize("charset", ["punycode", "utf-7", "idna", "zlib", "unicode_escape"])
def test_a_charset_without_a_linear_decoder_is_415(
    server: BackgroundServer, handler: Recording, charset: str
) -> None:
    # 1 MB of punycode kept the server busy for 94 s
    body = b"a" * 1_000_000 + b"-" + b"b" * 10
    response = put(server, f"text/plain; charset={charset}", body)
    name = charset.replace("_", "-")
    assert_refused(
        server,
        handler,
        response,
        415,
        f"text/plain charset {charset!r} ({name}) is not accepted: it is not a text encoding "
        f"that decodes in linear time; {ACCEPTED}",
    )


def test_an_unknown_charset_is_415_naming_what_is_accepted(
    server: BackgroundServer, handler: Recording
) -> None:
    response = put(server, "text/plain; charset=klingon", b"x")
    assert_refused(
        server, handler, response, 415, f"text/plain charset 'klingon' is not known; {ACCEPTED}"
    )


def test_code_pages_are_still_served(server: BackgroundServer) -> None:
    response = put(server, "text/plain; charset=windows-1252", b"\x80 5")
    assert (response.status_code, response.text) == (200, "€ 5")


# --- item 9: one rule for JSON numbers ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"NaN", "unexpected character, expected a JSON value: line 1 column 2 (char 1)"),
        (b"1e400", "number is infinity when parsed as double: line 1 column 2 (char 1)"),
        (b'"\\ud800"', "no low surrogate in string: line 1 column 3 (char 2)"),
    ],
)
def test_a_20_digit_run_in_a_string_does_not_change_the_verdict(
    server: BackgroundServer, handler: Recording, value: bytes, message: str
) -> None:
    # Such a body was answered 200 (and NaN came back as null).
    body = b"[" + value + b', "12345678901234567890"]'
    response = put(server, "application/json", body)
    assert_refused(server, handler, response, 400, f"malformed JSON: {message}")


def test_a_big_integer_and_nan_is_400_too(server: BackgroundServer, handler: Recording) -> None:
    body = b"[18446744073709551616, NaN]"
    response = put(server, "application/json", body)
    assert_refused(
        server,
        handler,
        response,
        400,
        "malformed JSON: NaN is not a JSON number (RFC 8259, section 6)",
    )


def test_big_integers_stay_exact(server: BackgroundServer) -> None:
    response = put(server, "application/json", b'[18446744073709551616, "x", 1.5]')
    assert response.status_code == 200
    assert response.content == b'[18446744073709551616,"x",1.5]'


def test_a_handler_answering_nan_gets_a_clear_500(
    server: BackgroundServer, handler: Recording
) -> None:
    response = put(server, "application/json", b"[]", path="/nan")
    assert (response.status_code, response.text) == (
        500,
        "the handler's answer for /nan cannot be sent: NaN cannot be sent as JSON "
        f"(at the value['mean']): {NAN}",
    )


@pytest.mark.parametrize(
    ("payload", "what", "where"),
    [
        (math.nan, "NaN", "the value"),
        ([1.0, math.inf], "Infinity", "the value[1]"),
        ({"x": -math.inf}, "-Infinity", "the value['x']"),
    ],
)
def test_our_clients_refuse_to_send_nan(
    server: BackgroundServer, handler: Recording, payload: Any, what: str, where: str
) -> None:
    # Issue 13, item 6: send('/x', float('nan')) sent null, the handler got None.
    message = f"{what} cannot be sent as JSON (at {where}): {NAN}"
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        with pytest.raises(EncodeError) as info:
            client.send("/x", payload)
        assert info.value.message == message
        assert client.send("/echo", [1.5, None]) == [1.5, None]

    async def async_client() -> None:
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
            with pytest.raises(EncodeError) as info:
                await client.send("/x", payload)
            assert info.value.message == message

    asyncio.run(async_client())
    assert handler.calls == 1  # only the [1.5, None] request reached it


# --- item 3: the budget for decoded structures ---------------------------------------


def test_empty_arrays_above_the_floor_are_413(server: BackgroundServer, handler: Recording) -> None:
    body = b"[" + b"[]," * (2 * MiB) + b"[]]"
    response = put(server, "application/json", body)
    assert response.status_code == 413
    assert response.text.startswith(f"JSON body of {len(body)} bytes would take about ")
    assert response.text.endswith(
        f"MiB decoded, over the {9 * len(body) / MiB:.1f} MiB allowed (9x its size): "
        f"too many small arrays, objects or numbers for its size; {ADVICE}"
    )
    assert_refused(server, handler, response, 413, response.text)


def test_msgpack_empty_arrays_above_the_floor_are_413(
    server: BackgroundServer, handler: Recording
) -> None:
    rows = b"\xdc\x01\x00" + (b"\xdc\xff\xff" + b"\x90" * 65535) * 256
    response = put(server, "application/msgpack", rows)
    assert_refused(
        server,
        handler,
        response,
        413,
        f"msgpack body of {len(rows)} bytes would take more decoded, over the "
        f"{9 * len(rows) / MiB:.1f} MiB allowed (9x its size): too many small arrays, "
        f"objects or numbers for its size; {ADVICE}",
    )


def test_msgpack_container_and_depth_limits_apply_over_http(
    server: BackgroundServer, handler: Recording
) -> None:
    # Before, HTTP's msgpack had no container limits at all.
    response = put(server, "application/msgpack", b"\xdd\x00\x01\x00\x01" + b"\x00" * 65537)
    assert_refused(
        server,
        handler,
        response,
        413,
        "msgpack array of 65537 items is over the limit of 65536 items per array or map "
        f"(max_container_len); {ADVICE}",
    )
    response = put(server, "application/msgpack", b"\x91" * 65 + b"\x90")
    assert_refused(
        server, handler, response, 400, "malformed msgpack: nested deeper than 64 levels"
    )
    # the limit itself is fine
    response = put(server, "application/msgpack", b"\xdd\x00\x01\x00\x00" + b"\x00" * 65536, "/len")
    assert (response.status_code, response.json()) == (200, 65536)


@pytest.fixture
def small_budget_server(handler: Recording) -> Iterator[BackgroundServer]:
    limits = Limits(max_structured_size=1 * MiB)
    app = create_app(handler, limits=limits, codecs=default_registry.with_limits(limits))
    with BackgroundServer(app) as server:
        yield server


def test_max_structured_size_is_413_and_bytes_keep_their_own_limit(
    small_budget_server: BackgroundServer, handler: Recording
) -> None:
    server = small_budget_server
    body = b"[" + b"1234567," * (MiB // 8) + b"0]"
    response = put(server, "application/json", body)
    assert_refused(
        server,
        handler,
        response,
        413,
        f"JSON body of {len(body)} bytes is over the limit of {MiB} bytes for JSON and "
        f"msgpack (max_structured_size); {ADVICE}",
    )
    packed = msgpack.packb([[0] * 60_000] * 20)
    response = put(server, "application/msgpack", packed)
    assert response.status_code == 413 and response.text.startswith("msgpack body of")
    response = put(server, "application/octet-stream", b"x" * (2 * MiB), path="/len")
    assert (response.status_code, response.json()) == (200, 2 * MiB)
