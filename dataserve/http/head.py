"""A request's line and headers, checked: what llhttp leaves to the server.

``read_head`` is pure (no I/O): from the parsed version, target and headers
it returns the framing facts the connection needs, or raises ``Refusal``
with the status and message to answer (every refusal closes the
connection):

* the size of the request line and headers (``max_header_size``): 431;
* the HTTP version: a request line without one (HTTP/0.9) is 400, and any
  version but 1.0 and 1.1 is 505;
* exactly one valid ``Host`` on an HTTP/1.1 request (RFC 9112 3.2): 400;
* ``Transfer-Encoding``: not allowed on HTTP/1.0 (RFC 9112 6.1), and on
  HTTP/1.1 only ``chunked`` alone, since chunked must be the final coding
  and this server applies no other (RFC 9112 6.1, 7): 400.

``refusal`` writes the answer to a refused request.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Head", "Refusal", "read_head", "refusal"]

Headers = list[tuple[bytes, bytes]]

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    505: b"HTTP Version Not Supported",
}


class Refusal(Exception):
    """The request cannot be served: answer ``status`` with ``message`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


@dataclass(slots=True)  # not frozen: built for every request, and frozen costs a microsecond
class Head:
    """The framing of one request, as its headers announce it."""

    #: ``Content-Length`` (``None`` without one).
    length: int | None
    chunked: bool
    keep_alive: bool
    expect_100: bool
    #: ``Connection: upgrade`` with an ``Upgrade`` header (ignored: RFC 9110 7.8).
    upgrade: bool
    #: Bytes of the request target and headers, as counted against the limit.
    size: int

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


def header_size(target: bytes, headers: Headers) -> int:
    """The request target and headers, each header counted with ``": "`` and CRLF."""
    return len(target) + sum(len(name) + len(value) + 4 for name, value in headers)


def read_head(version: str, target: bytes, headers: Headers, max_header_size: int) -> Head:
    size = len(target)
    hosts = 0
    length: int | None = None
    codings: list[bytes] = []
    connection: list[bytes] = []
    expect_100 = upgrade_header = False
    for name, value in headers:
        size += len(name) + len(value) + 4  # ": " and CRLF
        if name == b"host":
            # userinfo or a path in Host is as invalid as a second Host
            hosts += 2 if (b"@" in value or b"/" in value) else 1
        elif name == b"content-length":
            length = int(value)  # llhttp has refused every malformed one
        elif name == b"transfer-encoding":
            codings += [c.strip().lower() for c in value.split(b",")]
        elif name == b"connection":
            connection += [t.strip().lower() for t in value.split(b",")]
        elif name == b"expect":
            expect_100 = value.lower() == b"100-continue"
        elif name == b"upgrade":
            upgrade_header = True
    if size > max_header_size:
        raise Refusal(431, f"request headers are over the limit of {max_header_size} bytes")
    if version == "0.9":
        raise Refusal(400, "the request line has no HTTP version (HTTP/1.1 expected)")
    if version not in ("1.1", "1.0"):
        raise Refusal(505, f"HTTP/{version} is not supported: this server speaks HTTP/1.1")
    if version == "1.1":
        if hosts != 1:
            raise Refusal(400, "an HTTP/1.1 request needs exactly one valid Host header")
        if codings and codings != [b"chunked"]:
            raise Refusal(
                400,
                "Transfer-Encoding must be chunked alone: chunked is the final coding and "
                "no other is applied (RFC 9112 6.1)",
            )
    elif codings:
        raise Refusal(400, "Transfer-Encoding is not allowed in HTTP/1.0")
    return Head(
        length=length,
        chunked=bool(codings),
        keep_alive=version == "1.1" and b"close" not in connection,
        expect_100=expect_100,
        upgrade=upgrade_header and b"upgrade" in connection,
        size=size,
    )


def refusal(status: int, message: str, content_type: bytes = b"text/plain") -> bytes:
    """The answer to a refused request: ``message`` as its body, and ``connection: close``."""
    body = message.encode("ascii")
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, _REASONS[status], content_type, len(body), body)
    )
