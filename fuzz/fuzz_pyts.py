"""Fuzz target: pyts' sans-IO parser (``rawproto.proto.pyts``) and its document scanner.

As a server the driver answers the request document with a response; as a
client (flag bit 1) it reads a response document. The scanner decides where
a document ends as bytes arrive, so the same document cut anywhere must give
the same event. A second pass feeds the stream whole to a server with a
small size limit, where only typed errors may come out.

Run: ``python fuzz/run.py --seconds 60 pyts``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from dataserve.core.limits import Limits
from rawproto.proto.base import Event, Role
from rawproto.proto.pyts import (
    Connection,
    Request,
    Response,
    request_headers,
    response_headers,
)

from ._main import exec_target
from ._stream import Run, Unit, check_stream, decode_input, encode_input, ev, run

#: Nesting over 8 levels is common in fuzz input; the size limit stays the
#: default here (see ``SMALL``).
LIMITS = Limits(max_depth=8)
#: A size limit the fuzzer's inputs cross. Whether a limit is crossed can
#: depend on what arrived after the document in the same read, so this pass
#: only checks that nothing but typed errors comes out.
SMALL = Limits(max_depth=8, max_body_size=256)


class PytsDriver:
    has_client = True

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits

    def new(self, client: bool) -> Connection:
        return Connection(Role.CLIENT if client else Role.SERVER, self.limits)

    def react(self, conn: Any, event: Event, run: Run) -> bytes:
        if isinstance(event, Request):
            return conn.send(Response(response_headers(200), event.body))  # type: ignore[no-any-return]
        return b""

    def check(self, conn: Any, run: Run) -> None:
        documents = sum(isinstance(e, (Request, Response)) for e in run.events)
        assert documents <= 1, "a pyts connection carries one document each way"
        assert conn.complete == (documents == 1)
        if conn.complete:
            assert not conn.mid_frame
        if conn.role is Role.SERVER:
            assert conn.response_sent == (documents == 1)

    def check_error_reply(self, error: Exception, reply: bytes) -> None:
        if not reply:
            return  # a client answers nothing
        doc = json.loads(reply)
        status = getattr(error, "status", 0)
        assert doc["headers"]["STATUS-CODE"] == status, doc
        assert doc["body"] == getattr(error, "message", ""), doc


DRIVER = PytsDriver()
SMALL_DRIVER = PytsDriver(SMALL)


# --- valid streams ------------------------------------------------------------------


def document(headers: dict[str, Any], body: Any) -> bytes:
    return json.dumps({"headers": headers, "body": body}).encode()


def request(endpoint: str, body: Any, *, host: str = "127.0.0.1", port: int = 3000) -> list[Unit]:
    headers = request_headers(host, port, endpoint)
    return [(document(headers, body), ev(Request(headers, body)))]


def response(status: int, body: Any) -> list[Unit]:
    headers = response_headers(status)
    return [(document(headers, body), ev(Response(headers, body)))]


def seeds() -> Iterator[bytes]:
    bodies: list[Any] = [
        {},
        'text with \\ " and } ] {',
        [1, 2.5, None, True, {"k": [[]]}],
        {"deep": [[[[["x"]]]]], "big": 10**40, "u": "\u00e9\u2603"},
    ]
    for i, body in enumerate(bodies):
        (unit,) = request(f"/e{i}", body)
        yield encode_input(b" \r\n\t" * i + unit[0] + b" trailing bytes are ignored", seed=i)
    (unit,) = response(404, "/x was not found on this server. (404 Not Found)")
    yield encode_input(unit[0], client=True)
    yield encode_input(b'{"headers": {"HOST": "h"}, "body": 1}')
    yield encode_input(b'{"headers": {}, "body": NaN}')
    yield encode_input(b"[1]")
    yield encode_input(b"")
    yield encode_input(b'{"a": "\\ud800"}')


def check(data: bytes) -> None:
    check_stream(DRIVER, data)
    eof, client, _, stream = decode_input(data)
    run(SMALL_DRIVER, stream, eof=eof, client=client)


if __name__ == "__main__":
    exec_target("pyts")
