"""dataserve.http.head: the answer to a refused request."""

from __future__ import annotations

from dataserve.http.head import refusal


def test_a_refusal_says_why_and_closes() -> None:
    assert refusal(431, "too big") == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
        b"content-length: 7\r\nconnection: close\r\n\r\ntoo big"
    )
    assert refusal(400, "bad", b"text/plain; charset=utf-8").startswith(
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
    )
