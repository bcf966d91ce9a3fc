"""dataserve.callback.stream: ``datastream``, the body read by the callback as it arrives.

Fed by a scripted ASGI ``receive()``: the test says what arrives and sees
what each read pulled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dataserve.callback.stream import DataStream
from dataserve.core.errors import LimitExceeded, RemoteProtocolError


def scripted(
    *chunks: bytes, disconnect: bool = False
) -> tuple[Callable[[], Awaitable[Any]], list[int]]:
    """A ``receive()`` giving ``chunks`` (the last with more_body False), then
    a disconnect if asked; and the count of calls made."""
    calls: list[int] = []
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or disconnect}
        for i, c in enumerate(chunks)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        calls.append(1)
        return messages.pop(0)

    return receive, calls


def make(receive: Any, max_size: int = 1000, timeout: float = 10) -> DataStream:
    return DataStream(receive, asyncio.get_running_loop(), max_size=max_size, timeout=timeout)


def test_aread_pulls_only_what_it_needs() -> None:
    async def main() -> None:
        receive, calls = scripted(b"abc", b"def", b"gh")
        s = make(receive)
        assert s.readable() and not s.closed
        assert await s.aread(2) == b"ab" and len(calls) == 1
        assert await s.aread(2) == b"cd" and len(calls) == 2
        assert await s.aread() == b"efgh" and len(calls) == 3
        assert await s.aread() == b"" and await s.aread(5) == b""
        assert len(calls) == 3  # the body is over: nothing more is pulled

    asyncio.run(main())


def test_read_blocks_on_a_handler_thread_and_refuses_the_loop() -> None:
    async def main() -> None:
        receive, _ = scripted(b"hello ", b"world")
        s = make(receive)
        with pytest.raises(RuntimeError, match="would block the event loop"):
            s.read()
        assert await asyncio.to_thread(s.read, 3) == b"hel"
        assert await asyncio.to_thread(s.read) == b"lo world"

    asyncio.run(main())


def test_a_body_over_the_limit_is_413_and_later_reads_fail_the_same() -> None:
    async def main() -> None:
        receive, _ = scripted(b"x" * 6, b"y" * 6)
        s = make(receive, max_size=10)
        with pytest.raises(LimitExceeded, match="over the limit of 10 bytes") as info:
            await s.aread()
        assert info.value.status == 413 and s.error is info.value
        with pytest.raises(LimitExceeded):
            await s.aread(1)

    asyncio.run(main())


def test_a_client_that_goes_away_mid_body_is_a_400() -> None:
    async def main() -> None:
        receive, _ = scripted(b"part", disconnect=True)
        s = make(receive)
        assert await s.aread(4) == b"part"
        with pytest.raises(RemoteProtocolError, match="disconnected") as info:
            await s.aread()
        assert info.value.status == 400 and s.disconnected

    asyncio.run(main())


def test_nothing_arriving_within_the_timeout_is_a_408() -> None:
    async def main() -> None:
        async def never() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError

        s = make(never, timeout=0.05)
        with pytest.raises(
            RemoteProtocolError, match="stalled: nothing received for 0.05 s"
        ) as info:
            await s.aread()
        assert info.value.status == 408

    asyncio.run(main())


def test_a_cancelled_request_is_not_a_timeout() -> None:
    async def main() -> None:
        async def never() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError

        s = make(never)
        task = asyncio.ensure_future(s.aread())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert s.error is None

    asyncio.run(main())


def test_after_close_reads_are_errors() -> None:
    async def main() -> None:
        receive, _ = scripted(b"abc")
        s = make(receive)
        s.close()
        assert s.closed
        with pytest.raises(ValueError, match="closed datastream"):
            await s.aread()

    asyncio.run(main())
