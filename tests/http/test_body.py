"""dataserve.http.body: a request's body, streamed or whole, within its limits."""

from __future__ import annotations

import asyncio

from dataserve.http.body import STREAM_HIGH_WATER, WHOLE_BUFFER_FROM, RequestBody
from dataserve.http.flow import BODY, REFUSED, ReadFlow

from .fakes import Transport, Watchdog


def body(length: int | None, has_body: bool = True) -> tuple[RequestBody, ReadFlow, Watchdog]:
    flow = ReadFlow(Transport())
    watchdog = Watchdog()
    return RequestBody(flow, watchdog, length=length, has_body=has_body), flow, watchdog  # type: ignore[arg-type]


def test_a_streamed_body_comes_in_pieces_and_holds_reading_above_the_high_water() -> None:
    async def main() -> None:
        b, flow, _ = body(None)
        b.on_body(b"a" * STREAM_HIGH_WATER)
        assert not flow.holds(BODY)
        b.on_body(b"b")
        assert flow.holds(BODY)
        message = await b.receive()
        assert message == {
            "type": "http.request",
            "body": b"a" * STREAM_HIGH_WATER + b"b",
            "more_body": True,
        }
        assert not flow.holds(BODY)  # the app asked for more
        b.on_body(b"c")
        b.on_message_complete()
        assert await b.receive() == {"type": "http.request", "body": b"c", "more_body": False}

    asyncio.run(main())


def test_a_large_body_taken_whole_is_read_into_one_buffer() -> None:
    async def main() -> None:
        size = WHOLE_BUFFER_FROM * 2
        b, _, watchdog = body(size)
        b.on_body(b"x" * 10)  # arrived before the app asked
        b.want_whole(size, 5.0)
        view = b.reading_into()
        assert view is not None
        rest = view.remaining()
        assert len(rest) == size - 10
        rest[:] = b"y" * len(rest)
        b.read_into(len(rest))
        assert b.reading_into() is None and b.received == size
        assert watchdog.deadlines[0].restarts == 1
        b.on_message_complete()
        message = await b.receive()
        assert message == {
            "type": "http.request",
            "body": b"x" * 10 + b"y" * (size - 10),
            "more_body": False,
        }

    asyncio.run(main())


def test_a_small_body_taken_whole_is_kept_as_its_pieces() -> None:
    async def main() -> None:
        b, _, _ = body(6)
        b.want_whole(100, 5.0)
        assert b.reading_into() is None
        b.on_body(b"abc")
        b.on_body(b"def")
        b.on_message_complete()
        assert (await b.receive_whole())["body"] == b"abcdef"

    asyncio.run(main())


def test_a_body_over_the_limit_fails_and_nothing_more_is_read() -> None:
    async def main() -> None:
        b, flow, _ = body(1000)
        b.want_whole(999, 5.0)
        assert flow.holds(REFUSED) and b.failure == "too_large"
        assert await b.receive() == {"type": "dataserve.body_too_large", "received": 0}
        chunked, flow, _ = body(None)
        chunked.want_whole(4, 5.0)
        chunked.on_body(b"abc")
        chunked.on_body(b"de")
        assert flow.holds(REFUSED)
        assert await chunked.receive_whole() == {
            "type": "dataserve.body_too_large",
            "received": 5,
        }
        chunked.on_body(b"f")  # dropped
        assert chunked.received == 5

    asyncio.run(main())


def test_a_body_that_stalls_fails() -> None:
    async def main() -> None:
        b, flow, watchdog = body(None)
        b.want_whole(100, 5.0)
        watchdog.deadlines[0].fire()
        assert flow.holds(REFUSED)
        assert await b.receive_whole() == {"type": "dataserve.body_stalled", "received": 0}

    asyncio.run(main())


def test_once_closed_the_body_is_dropped_and_the_app_told() -> None:
    async def main() -> None:
        b, _, watchdog = body(WHOLE_BUFFER_FROM)
        b.want_whole(WHOLE_BUFFER_FROM, 5.0)
        waiting = asyncio.ensure_future(b.receive_whole())
        await asyncio.sleep(0)
        b.close()
        assert await waiting == {"type": "http.disconnect"}
        assert watchdog.deadlines[0].stopped and b.reading_into() is None
        b.on_body(b"late")
        assert b.received == 0
        assert await b.receive() == {"type": "http.disconnect"}

    asyncio.run(main())
