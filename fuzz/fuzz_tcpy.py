"""Fuzz target: tcpy's sans-IO parser (``rawproto.proto.tcpy``) and its msgpack limits.

As a server the driver replies to every request at once, except to
``"chat"``, whose handler first reads one more message (``TCPHandler.recv``),
so both of the server's states are reached. Limits are small, so frames,
containers and nesting over them are common. As a client (flag bit 1) every
frame is a ``Message``.

Run: ``python fuzz/run.py --seconds 60 tcpy``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import msgpack

from dataserve.core.limits import Limits
from rawproto.proto.base import Event, Role
from rawproto.proto.tcpy import Connection, Message, Reply, Request

from ._main import exec_target
from ._stream import Run, Unit, check_stream, encode_input, err, ev, stream_of

LIMITS = Limits(max_frame_size=4096, max_container_len=16, max_depth=8)
_LENGTH = struct.Struct(">I")


class TcpyDriver:
    has_client = True

    def new(self, client: bool) -> Connection:
        return Connection(Role.CLIENT if client else Role.SERVER, LIMITS)

    def react(self, conn: Any, event: Event, run: Run) -> bytes:
        if conn.role is Role.CLIENT:
            return b""
        if isinstance(event, Request) and event.command == "chat":
            run.note("chatting")
            return b""  # the handler reads one more message first
        if isinstance(event, (Request, Message)):
            if isinstance(event, Message):
                run.note("chatting", -1)
            return conn.send(Reply({"success": True}))  # type: ignore[no-any-return]
        return b""

    def check(self, conn: Any, run: Run) -> None:
        assert not conn.must_close, "must_close without a fatal error"
        if conn.role is Role.SERVER:
            assert conn.busy == (run.notes.get("chatting", 0) == 1)
        else:
            assert not conn.busy

    def check_error_reply(self, error: Exception, reply: bytes) -> None:
        if not reply:
            return  # a client sends no error maps
        (length,) = _LENGTH.unpack_from(reply)
        assert length == len(reply) - 4
        answer = msgpack.unpackb(reply[4:])
        assert answer == {"error": True, "message": getattr(error, "message", "")}, answer


DRIVER = TcpyDriver()


# --- valid streams ------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def request(command: str, params: dict[str, Any], said: Any = None) -> list[Unit]:
    """A request; for ``"chat"``, ``said`` is the message the handler then reads."""
    units: list[Unit] = [
        (frame(msgpack.packb({"cmd": command, **params})), ev(Request(command, params)))
    ]
    if command == "chat":
        units.append((frame(msgpack.packb(said)), ev(Message(said))))
    return units


def message(value: Any) -> list[Unit]:
    """Any message (client role)."""
    return [(frame(msgpack.packb(value)), ev(Message(value)))]


def no_command(params: dict[str, Any]) -> list[Unit]:
    """A map without a usable ``"cmd"``: answered, and the connection goes on."""
    return [(frame(msgpack.packb(params)), err(400, False))]


def not_a_map(value: Any) -> list[Unit]:
    """A request that is not a map: fatal."""
    assert not isinstance(value, dict)
    return [(frame(msgpack.packb(value)), err(400, True))]


def oversize(length: int) -> list[Unit]:
    """A length over ``max_frame_size``: fatal, before any payload is read."""
    assert length > LIMITS.max_frame_size
    return [(_LENGTH.pack(length), err(413, True))]


def seeds() -> Iterator[bytes]:
    units = request("add", {"x": 1, "y": 2}) + request("chat", {}, {"more": [1.5, None]})
    units += no_command({"x": 1}) + request("echo", {"b": b"\x00\xff", "s": "\u00e9", "n": -1})
    units += request("deep", {"a": [[[[1]]]], "m": {"k": {"k": "v"}}})
    units += no_command({"cmd": 5}) + request("big", {"i": 2**64 - 1, "f": -0.0})
    stream, _ = stream_of(units)
    yield encode_input(stream)
    yield encode_input(stream, eof=False, seed=5)
    yield encode_input(stream_of(not_a_map([1, 2]))[0])
    yield encode_input(stream_of(oversize(0xFFFFFFFF))[0])
    yield encode_input(frame(b"\x91" * 20))  # nested past max_depth
    yield encode_input(frame(b"\xdd\xff\xff\xff\xff"))  # an array of 2**32-1 items, announced
    yield encode_input(frame(b"\x80\x04\x95"))  # the start of a pickle: never unpickled
    yield encode_input(frame(msgpack.packb({"cmd": "x", 1: 2})))  # an int key
    yield encode_input(frame(b"\xd6\xff\x00\x00\x00\x00"))  # a timestamp extension
    yield encode_input(frame(b"\xc7\x01\x05x"))  # an unknown extension type
    client = message({"success": True, "solution": 3}) + message({"error": True, "message": "x"})
    yield encode_input(stream_of(client + message([1, "two"]))[0], client=True)


def check(data: bytes) -> None:
    check_stream(DRIVER, data)


if __name__ == "__main__":
    exec_target("tcpy")
