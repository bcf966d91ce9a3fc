"""A toy line protocol and its sessions: the engine's tests drive a framing it knows nothing of."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from dataserve.core.errors import LocalProtocolError, ProtocolError
from rawproto.engine import Connection, Session
from rawproto.proto.base import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    FrameError,
    NeedData,
    ReceiveBuffer,
)


@dataclass(frozen=True, slots=True)
class Line(Event):
    text: bytes


class LineProtocol:
    """One request per line; ``!`` opens the connection; lines over 100 bytes are refused."""

    def __init__(self) -> None:
        self.buf = ReceiveBuffer()
        self.hello = False
        self.eof = False

    @property
    def handshake_complete(self) -> bool:
        return self.hello

    @property
    def mid_frame(self) -> bool:
        return bool(self.buf)

    def initiate(self) -> bytes:
        return b"!"

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        if data is None:
            self.eof = True
        else:
            self.buf.append(data)

    def next_event(self) -> Event | NeedData:
        if not self.hello:
            if not self.buf:
                return ConnectionClosed() if self.eof else NEED_DATA
            if self.buf.take(1) != b"!":
                raise FrameError("bad hello")
            self.hello = True
        data = self.buf.peek(len(self.buf))
        end = data.find(b"\n")
        if end < 0:
            if len(data) > 100:
                raise FrameError("line too long", 413)
            return ConnectionClosed() if self.eof and not data else NEED_DATA
        self.buf.skip(end + 1)
        return Line(data[:end])

    def send(self, event: Event) -> bytes:
        if not isinstance(event, Line):
            raise LocalProtocolError("lines only")
        return event.text + b"\n"

    def error_reply(self, error: ProtocolError) -> bytes:
        return f"ERR {error.status} {error.message}\n".encode()


class LineSession(Session):
    """``wait``: held until ``go``; ``go``: releases; ``raise``: ``handle`` raises;
    ``crash``: the request it starts fails; anything else is echoed."""

    def __init__(self, conn: Connection, service: LineService) -> None:
        super().__init__(conn, LineProtocol())
        self.service = service

    def handle(self, event: object) -> Awaitable[Any] | None:
        assert isinstance(event, Line)
        self.service.seen += 1
        if event.text == b"wait":
            return self.answer_later(event)
        if event.text == b"go":
            self.service.go.set()
        if event.text == b"raise":
            raise RuntimeError("the session is broken")
        if event.text == b"crash":
            return self.crash()
        self.conn.send(Line(b"echo " + event.text))
        return None

    async def answer_later(self, event: Line) -> None:
        await self.service.go.wait()
        self.conn.send(Line(b"done"))

    async def crash(self) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("the request failed")


class ConcurrentLineSession(LineSession):
    concurrent = True


class LineService:
    def __init__(self, session: type[LineSession] = LineSession) -> None:
        self.session_class = session
        self.go = asyncio.Event()
        self.seen = 0
        self.closed = False

    def session(self, conn: Connection) -> Session:
        return self.session_class(conn, self)

    async def aclose(self) -> None:
        self.closed = True
