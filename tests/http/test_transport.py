"""dataserve.http.transport: a response's writes within one loop turn leave in one send."""

from __future__ import annotations

import asyncio
from typing import Any

from dataserve.http.transport import CoalescingTransport


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False
        self.buffered = 0
        self.extra = {"peername": ("127.0.0.1", 1)}

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def write_eof(self) -> None:
        self.events.append("eof")

    def abort(self) -> None:
        self.events.append("abort")

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


def run(test: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        raw = Recorder()
        await test(CoalescingTransport(raw, loop), raw)  # type: ignore[arg-type]

    asyncio.run(main())


def test_writes_of_one_turn_leave_joined_in_one_write() -> None:
    async def test(t: CoalescingTransport, raw: Recorder) -> None:
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.writelines([b"body", b"", b"!"])
        assert raw.writes == []
        assert t.get_write_buffer_size() == 19 + 5  # what waits counts as buffered
        await asyncio.sleep(0)
        assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody!"]

    run(test)


def test_one_write_is_passed_as_it_is() -> None:
    async def test(t: CoalescingTransport, raw: Recorder) -> None:
        data = b"x" * 10
        t.write(data)
        await asyncio.sleep(0)
        assert raw.writes == [data]

    run(test)


def test_large_pieces_are_not_copied_to_be_joined() -> None:
    async def test(t: CoalescingTransport, raw: Recorder) -> None:
        head, body = b"head", b"b" * (64 * 1024 + 1)
        t.write(head)
        t.write(body)
        await asyncio.sleep(0)
        assert raw.writes == [head, body]

    run(test)


def test_close_and_write_eof_send_what_waits_first() -> None:
    async def test(t: CoalescingTransport, raw: Recorder) -> None:
        t.write(b"last")
        t.write_eof()
        assert raw.events == ["write", "eof"]
        t.write(b"more")
        t.close()
        assert raw.events == ["write", "eof", "write", "close"]
        assert raw.writes == [b"last", b"more"]

    run(test)


def test_abort_drops_what_waits() -> None:
    async def test(t: CoalescingTransport, raw: Recorder) -> None:
        t.write(b"never")
        t.abort()
        await asyncio.sleep(0)
        assert raw.events == ["abort"] and raw.writes == []

    run(test)


def test_nothing_is_written_to_a_transport_closing_meanwhile() -> None:
    async def test(t: CoalescingTransport, raw: Recorder) -> None:
        t.write(b"late")
        raw.closing = True
        await asyncio.sleep(0)
        assert raw.writes == []

    run(test)


def test_everything_else_goes_straight_to_the_transport() -> None:
    async def test(t: CoalescingTransport, raw: Recorder) -> None:
        t.pause_reading()
        t.resume_reading()
        assert raw.events == ["pause", "resume"]
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)
        assert t.is_closing() is False

    run(test)
