"""docs/protocol.md: every hex vector encodes and parses exactly as documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from rawproto.proto import native, tinyproto
from rawproto.proto.base import NEED_DATA, Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
VECTOR = re.compile(
    r"<!-- vector: (?P<name>[\w-]+) -->\n```text\nevent: (?P<event>[^\n]+)\nbytes: (?P<hex>.+?)```",
    re.DOTALL,
)
NAMESPACE: dict[str, Any] = {
    name: getattr(module, name)
    for module, names in (
        (native, ("Preface", "Auth", "Request", "Reply", "Error")),
        (tinyproto, ("Handshake", "Announce", "Accept", "Refuse", "Message")),
    )
    for name in names
}


def vectors() -> list[tuple[str, Any, bytes]]:
    found = []
    for m in VECTOR.finditer(DOC.read_text(encoding="utf-8")):
        event = eval(m["event"], {"__builtins__": {}}, NAMESPACE)
        found.append((m["name"], event, bytes.fromhex(" ".join(m["hex"].split()))))
    return found


VECTORS = vectors()
NATIVE = [v for v in VECTORS if not v[0].startswith("tinyproto")]
TINY = [v for v in VECTORS if v[0].startswith("tinyproto")]


def test_the_doc_has_vectors_for_every_native_frame_kind() -> None:
    kinds = {type(event).__name__ for _, event, _ in NATIVE}
    assert kinds == {"Preface", "Auth", "Request", "Reply", "Error"}
    assert len(TINY) >= 5


def sender(event: Any) -> native.NativeConnection:
    role = Role.CLIENT if isinstance(event, (native.Request, native.Auth)) else Role.SERVER
    conn = native.NativeConnection(role)
    if not isinstance(event, native.Preface):
        conn.initiate()
    return conn


def receiver(event: Any) -> native.NativeConnection:
    if isinstance(event, native.Auth):  # checked by a server that has this token
        conn = native.NativeConnection(Role.SERVER, token=event.token)
        conn.receive_data(native.PREFACE)
        assert conn.next_event() == native.Preface()
        return conn
    role = Role.SERVER if isinstance(event, native.Request) else Role.CLIENT
    conn = native.NativeConnection(role)
    if not isinstance(event, native.Preface):
        conn.receive_data(native.PREFACE)
        assert conn.next_event() == native.Preface()
    return conn


@pytest.mark.parametrize(("name", "event", "data"), NATIVE, ids=[v[0] for v in NATIVE])
def test_native_vector_encodes(name: str, event: Any, data: bytes) -> None:
    assert sender(event).send(event) == data


@pytest.mark.parametrize(("name", "event", "data"), NATIVE, ids=[v[0] for v in NATIVE])
def test_native_vector_parses(name: str, event: Any, data: bytes) -> None:
    conn = receiver(event)
    conn.receive_data(data)
    assert conn.next_event() == event
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize(("name", "event", "data"), TINY, ids=[v[0] for v in TINY])
def test_tinyproto_vector_encodes(name: str, event: Any, data: bytes) -> None:
    conn = tinyproto.TinyProtoConnection()
    if not isinstance(event, tinyproto.Handshake):
        conn.initiate()
        conn.receive_data(tinyproto.HANDSHAKE)
        assert conn.next_event() == tinyproto.Handshake()
    if isinstance(event, (tinyproto.Accept, tinyproto.Refuse)):
        conn.receive_data(b"\x00\x00\x00\x05")  # something to answer
        assert conn.next_event() == tinyproto.Announce(5)
    if isinstance(event, tinyproto.Message):
        conn.send(tinyproto.Announce(len(event.data)))
        conn.receive_data(b"\xff")
        assert conn.next_event() == tinyproto.Accepted(len(event.data))
    assert conn.send(event) == data
