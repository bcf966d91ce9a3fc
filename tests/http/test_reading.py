"""dataserve.http.reading: a data request's decoder and body, within the limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dataserve.core.codec import default_registry
from dataserve.core.limits import DEFAULT_LIMITS
from dataserve.http.cycle import WHOLE_BODY
from dataserve.http.reading import Disconnected, Reject, RequestReader

LIMITS = DEFAULT_LIMITS.replace(max_body_size=10, body_timeout=5.0)


def reader() -> RequestReader:
    return RequestReader(LIMITS, default_registry.with_limits(LIMITS))


def scope(*headers: tuple[bytes, bytes], read: Any = None) -> dict[str, Any]:
    extensions = {WHOLE_BODY: {"read": read}} if read else {}
    return {"headers": list(headers), "extensions": extensions}


def receiving(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def read(s: dict[str, Any], receive: Any = None, whole: bool = False) -> tuple[bytes, Any]:
    r = reader()
    decode = r.check(s)
    body = asyncio.run(r.whole(s) if whole else r.pieces(receive or receiving()))
    return body, decode


def test_a_body_in_pieces_is_joined_and_decoded_by_its_type() -> None:
    body, decode = read(
        scope((b"content-type", b"application/json")),
        receiving(
            {"type": "http.request", "body": b"[1,", "more_body": True},
            {"type": "http.request", "body": b"2]", "more_body": False},
        ),
    )
    assert body == b"[1,2]" and decode(body) == [1, 2]


def test_without_a_content_type_a_body_is_bytes_and_no_body_is_none() -> None:
    body, decode = read(scope(), receiving({"type": "http.request", "body": b""}))
    assert body == b"" and decode(body) is None and decode(b"x") == b"x"


def test_a_content_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(Reject) as refused:
        read(scope((b"content-length", b"11")), receiving())  # receive() would fail
    assert refused.value.status == 413 and refused.value.close


def test_a_type_no_codec_takes_is_415() -> None:
    with pytest.raises(Reject) as refused:
        read(scope((b"content-type", b"image/png")))
    assert refused.value.status == 415 and not refused.value.close


def test_pieces_over_the_limit_are_413_with_what_was_received() -> None:
    with pytest.raises(Reject) as refused:
        read(
            scope(),
            receiving(
                {"type": "http.request", "body": b"x" * 6, "more_body": True},
                {"type": "http.request", "body": b"x" * 6, "more_body": True},
            ),
        )
    assert (refused.value.status, refused.value.received, refused.value.close) == (413, 12, True)


def test_a_client_gone_before_its_body_is_in_is_disconnected() -> None:
    with pytest.raises(Disconnected) as gone:
        read(
            scope(),
            receiving(
                {"type": "http.request", "body": b"abc", "more_body": True},
                {"type": "http.disconnect"},
            ),
        )
    assert gone.value.received == 3


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ({"type": "dataserve.body_too_large", "received": 11}, 413),
        ({"type": "dataserve.body_stalled", "received": 4}, 408),
    ],
)
def test_a_whole_body_the_server_could_not_read_is_refused(
    message: dict[str, Any], status: int
) -> None:
    asked: list[tuple[int, float]] = []

    async def read_whole(max_size: int, timeout: float) -> dict[str, Any]:
        asked.append((max_size, timeout))
        return message

    with pytest.raises(Reject) as refused:
        read(scope(read=read_whole), whole=True)
    assert asked == [(10, 5.0)]
    assert refused.value.status == status and refused.value.received == message["received"]


def test_a_whole_body_comes_in_one_message() -> None:
    async def read_whole(max_size: int, timeout: float) -> dict[str, Any]:
        return {"type": "http.request", "body": b"whole", "more_body": False}

    body, _ = read(scope(read=read_whole), whole=True)
    assert body == b"whole"
