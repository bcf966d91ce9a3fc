"""Fuzz target: the native framing's sans-IO parser (``rawproto.proto.native``).

As a server the driver answers every request with a reply and every error
with ``error_reply``; the bytes it sends are part of the trace, and a client
connection must read them back as frames. As a client (flag bit 1) it takes
the server's frames. ``TOKEN_DRIVER`` is a server that requires a token in
the first frame (the hypothesis state machine in ``tests/fuzz`` uses it).

Run: ``python fuzz/run.py --seconds 60 native``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rawproto.proto.base import Event, Role
from rawproto.proto.native import (
    HEADER,
    KIND_AUTH,
    KIND_ERROR,
    KIND_REPLY,
    KIND_REQUEST,
    PRE_AUTH_MAX_FRAME_SIZE,
    PREFACE,
    Auth,
    Error,
    NativeConnection,
    Preface,
    Reply,
    Request,
)

from ._main import exec_target
from ._stream import Run, Unit, check_stream, encode_input, err, ev, stream_of

#: Small, so that frames over the limit (413, fatal) are common.
MAX_FRAME = 4096
_HEAD_REST = HEADER.size - 4


class NativeDriver:
    has_client = True

    def __init__(self, token: bytes | None = None) -> None:
        self.token = token

    def new(self, client: bool) -> NativeConnection:
        if client:
            return NativeConnection(Role.CLIENT, max_frame_size=MAX_FRAME)
        return NativeConnection(Role.SERVER, max_frame_size=MAX_FRAME, token=self.token)

    def react(self, conn: Any, event: Event, run: Run) -> bytes:
        if isinstance(event, Request):
            reply = conn.send(Reply(event.request_id, event.tag, event.body))
            # What we send must read back as the same frame on the other side.
            peer = NativeConnection(Role.CLIENT)
            peer.receive_data(PREFACE + reply)
            assert peer.events() == [Preface(), Reply(event.request_id, event.tag, event.body)]
            return reply  # type: ignore[no-any-return]
        return b""

    def check(self, conn: Any, run: Run) -> None:
        prefaces = sum(isinstance(e, Preface) for e in run.events)
        assert prefaces <= 1, "two prefaces reported"
        authenticated = self.token is None or any(isinstance(e, Auth) for e in run.events)
        assert conn.handshake_complete == (prefaces == 1 and authenticated)
        if self.token is not None:
            assert not any(isinstance(e, Request) for e in run.events) or authenticated

    def check_error_reply(self, error: Exception, reply: bytes) -> None:
        if not reply:
            return  # a client has no error frames to send
        # An error frame a client reads back: the status, the request it names.
        peer = NativeConnection(Role.CLIENT)
        peer.receive_data(PREFACE + reply)
        (event,) = peer.events()[1:]
        assert isinstance(event, Error), event
        assert event.code == getattr(error, "status", 0)
        assert event.request_id == getattr(error, "request_id", 0)


DRIVER = NativeDriver()
#: The token ``TOKEN_DRIVER`` requires.
TOKEN = b"fuzz-token"
TOKEN_DRIVER = NativeDriver(TOKEN)


# --- valid streams ------------------------------------------------------------------


def opening() -> list[Unit]:
    return [(PREFACE, ev(Preface()))]


def frame(kind: int, request_id: int, body: bytes = b"", tag: int = 0, res_len: int = 0) -> bytes:
    return HEADER.pack(_HEAD_REST + len(body), kind, tag, res_len, request_id) + body


def request(request_id: int, resource: str, tag: int = 0, body: bytes = b"") -> list[Unit]:
    raw = resource.encode("utf-8")
    data = frame(KIND_REQUEST, request_id, raw + body, tag, len(raw))
    if len(data) - 4 > MAX_FRAME:
        return [(data[: HEADER.size], err(413, True)), (data[HEADER.size :], None)]
    return [(data, ev(Request(request_id, resource, tag, body)))]


def auth(token: bytes, expected: bytes | None = None) -> list[Unit]:
    """An AUTH first frame, to a server that requires ``expected`` (or none)."""
    data = frame(KIND_AUTH, 0, token)
    if len(data) - 4 > PRE_AUTH_MAX_FRAME_SIZE:
        return [(data[: HEADER.size], err(413, True)), (data[HEADER.size :], None)]
    if expected is not None and token != expected:
        return [(data, err(401, True))]
    return [(data, ev(Auth(token)))]


def unauthenticated(request_id: int, body: bytes = b"") -> list[Unit]:
    """A REQUEST first, to a server that requires a token: 401 from its header."""
    data = frame(KIND_REQUEST, request_id, b"/x" + body, 0, 2)
    return [(data[: HEADER.size], err(401, True)), (data[HEADER.size :], None)]


def reply(request_id: int, tag: int = 0, body: bytes = b"") -> list[Unit]:
    """A server's reply (client role)."""
    return [(frame(KIND_REPLY, request_id, body, tag), ev(Reply(request_id, tag, body)))]


def error(request_id: int, code: int, message: str) -> list[Unit]:
    """A server's error frame (client role)."""
    body = code.to_bytes(2, "big") + message.encode("utf-8")
    return [(frame(KIND_ERROR, request_id, body), ev(Error(request_id, code, message)))]


def not_for_server(kind: int, request_id: int, body: bytes = b"") -> list[Unit]:
    """A frame a server does not take: skipped with a non-fatal 400."""
    assert kind != KIND_REQUEST
    return _skipped(frame(kind, request_id, body))


def not_for_client(request_id: int, body: bytes = b"") -> list[Unit]:
    """A REQUEST frame sent to a client: skipped with a non-fatal 400."""
    return _skipped(frame(KIND_REQUEST, request_id, body))


def _skipped(data: bytes) -> list[Unit]:
    # Refused from the header alone; the body is then discarded as it comes.
    return [(data[: HEADER.size], err(400, False)), (data[HEADER.size :], None)]


def oversize(length: int, kind: int = KIND_REQUEST, request_id: int = 1) -> list[Unit]:
    """A header announcing more than ``MAX_FRAME``: fatal, nothing more is read."""
    assert length > MAX_FRAME
    return [(HEADER.pack(length, kind, 0, 0, request_id), err(413, True))]


def zero_request_id() -> list[Unit]:
    """A REQUEST with id 0 (reserved for the connection): fatal."""
    data = frame(KIND_REQUEST, 0, b"x")
    return [(data[: HEADER.size], err(400, True)), (data[HEADER.size :], None)]


def bad_resource(request_id: int, raw: bytes, body: bytes = b"") -> list[Unit]:
    """A request whose resource is not UTF-8: a non-fatal 400, given as soon
    as the resource has arrived (the payload after it is skipped)."""
    data = frame(KIND_REQUEST, request_id, raw + body, 0, len(raw))
    if not body:
        return [(data, err(400, False))]
    at = HEADER.size + len(raw)
    return [(data[:at], err(400, False)), (data[at:], None)]


def seeds() -> Iterator[bytes]:
    units = opening()
    units += request(1, "/echo", 3, b"[1, 2]") + request(2, "/a/\u00e9", 1, "\u00fc".encode())
    units += request(0xFFFFFFFF, "", 0) + not_for_server(KIND_REPLY, 3, b"x")
    units += not_for_server(KIND_AUTH, 0, b"secret") + bad_resource(4, b"\xff\xfe", b"b")
    units += request(5, "/big", 2, bytes(3000))
    stream, _ = stream_of(units)
    yield encode_input(stream)
    yield encode_input(stream, eof=False, seed=3)
    yield encode_input(stream_of(opening() + request(9, "/x", 2, bytes(5000)))[0])
    client = opening() + reply(1, 3, b"[1]") + error(2, 404, "not handled") + reply(7)
    client += error(0, 503, "shutting down")
    yield encode_input(stream_of(client)[0], client=True)
    yield encode_input(b"GET / HTTP/1.1\r\n\r\n")
    yield encode_input(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello


def check(data: bytes) -> None:
    check_stream(DRIVER, data)


if __name__ == "__main__":
    exec_target("native")
