"""The clients' I/O-free half: requests built from payloads, replies decided, errors mapped."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from dataserve import ConnectError, ConnectionClosed, DecodeError, NotHandled, TimeoutError
from dataserve.client.exchange import Exchange, translate
from dataserve.client.transfer import PIECE, FilePieces, Pieces
from dataserve.core.codec import BYTES, JSON, TEXT, default_registry
from dataserve.core.errors import HandlerError, TransportError

URL = "http://127.0.0.1:8000"


def exchange() -> Exchange:
    return Exchange(URL, default_registry)


def response(status: int, body: bytes, content_type: str | None = None) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.Response(
        status, content=body, headers=headers, request=httpx.Request("PUT", URL + "/r")
    )


def test_url_adds_the_missing_slash() -> None:
    assert exchange().url("echo") == URL + "/echo"
    assert exchange().url("/echo") == URL + "/echo"


def test_a_small_value_goes_whole_with_its_length() -> None:
    request = exchange().request("/r", [1, 2], None)
    assert request.pieces is None
    assert request.headers == {"content-type": JSON, "content-length": str(len(request.body))}
    assert default_registry.decode(JSON, request.body) == [1, 2]


def test_none_is_an_empty_text_body() -> None:
    request = exchange().request("/r", None, None)
    assert (request.body, request.pieces) == (b"", None)
    assert request.headers == {"content-type": TEXT, "content-length": "0"}


def test_a_large_body_or_one_with_progress_goes_in_pieces() -> None:
    big = exchange().request("/r", b"x" * (PIECE + 1), None)
    assert big.body == b"" and type(big.pieces) is Pieces
    assert big.headers["content-length"] == str(PIECE + 1)
    watched = exchange().request("/r", b"abc", lambda *_: None)
    assert watched.pieces is not None and watched.pieces.read() == b"abc"
    assert watched.meter.total == 3


def test_a_file_is_streamed_as_octets_and_a_path_closed_after(tmp_path: Path) -> None:
    path = tmp_path / "payload"
    path.write_bytes(b"0123456789")
    request = exchange().request("/r", path, None)
    assert isinstance(request.pieces, FilePieces)
    assert request.headers == {"content-type": BYTES, "content-length": "10"}
    request.close()
    assert request.pieces.file.closed
    stream = io.BytesIO(b"0123456789")
    stream.seek(4)
    request = exchange().request("/r", stream, None)
    assert request.headers["content-length"] == "6"
    request.close()
    assert not stream.closed  # the caller's file is the caller's to close


def test_a_text_file_is_refused() -> None:
    with pytest.raises(TypeError, match="binary"):
        exchange().request("/r", io.StringIO("text"), None)


def test_a_reply_is_decoded_by_its_media_type() -> None:
    assert exchange().reply(response(200, b"[1, 2]", JSON), b"[1, 2]") == [1, 2]
    with pytest.raises(DecodeError, match="undecodable reply from"):
        exchange().reply(response(200, b"{", JSON), b"{")


def test_an_error_status_raises_its_exception_with_the_body_as_message() -> None:
    with pytest.raises(NotHandled, match="no such resource"):
        exchange().reply(response(404, b""), b"no such resource\n")
    failed = response(500, b"")
    assert exchange().failed(failed) and not exchange().failed(response(204, b""))
    error = exchange().error(failed, b"")
    assert isinstance(error, HandlerError) and error.message == "Internal Server Error"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectError("refused"), ConnectError),
        (httpx.ReadTimeout("slow"), TimeoutError),
        (httpx.RemoteProtocolError("bad framing"), ConnectionClosed),
        (httpx.ReadError("reset"), ConnectionClosed),
        (httpx.WriteError("broken pipe"), ConnectionClosed),
        (httpx.ProxyError("no proxy"), TransportError),
    ],
)
def test_httpx_errors_become_the_cores(raised: Exception, expected: type) -> None:
    with pytest.raises(expected) as info, translate(URL):
        raise raised
    assert type(info.value) is expected
    assert info.value.__cause__ is raised
    assert URL in str(info.value)
