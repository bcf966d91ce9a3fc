"""The callback API's request and response dicts, without any I/O.

Everything here is a pure function of its arguments: argument checks for
``httpserver_registercallback``, the query-string and header parsing behind
the request dict, and the validation that turns a callback's response dict
into a status, header list and body (or says exactly what is wrong with it).
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple, TypeVar, overload
from urllib.parse import unquote_plus

__all__ = [
    "InvalidResponse",
    "Reply",
    "RequestHeaders",
    "build_reply",
    "canonical_header_name",
    "check_address",
    "check_callback",
    "check_threads",
    "parse_query",
    "reason_phrase",
    "request_headers",
    "standard_reason",
]

_T = TypeVar("_T")

# --- arguments ---------------------------------------------------------------


def check_address(addresstuple: object) -> tuple[str, int]:
    """``(host, port)`` from the seed's address 2-tuple, or a precise error."""
    if not isinstance(addresstuple, tuple):
        raise TypeError(
            f"addresstuple must be a (host, port) tuple, not {type(addresstuple).__name__}"
        )
    if len(addresstuple) != 2:
        raise ValueError(f"addresstuple must be (host, port), not {len(addresstuple)} items")
    host, port = addresstuple
    if not isinstance(host, str):
        raise TypeError(f"the host must be a str, not {type(host).__name__}")
    if not host:
        # socket.bind('') means every interface; that must be asked for by name.
        raise ValueError("the host is empty: name it ('127.0.0.1', or '0.0.0.0' for all)")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"the port must be an int, not {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise ValueError(f"the port must be in 1..65535, not {port}")
    return host, port


def check_callback(cbfunc: object) -> None:
    if not callable(cbfunc):
        raise TypeError(f"cbfunc must be callable, not {type(cbfunc).__name__}")


def check_threads(threads: object) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int, not {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    return threads


# --- the request dict ----------------------------------------------------------


def parse_query(query: str) -> dict[str, str | None]:
    """``'foo=bar&baz'`` -> ``{'foo': 'bar', 'baz': None}``.

    Fields are separated by ``&`` only (not ``;``, as in Python 3.10's
    ``parse_qsl`` after CVE-2021-23336); empty fields are skipped. A field
    without ``=`` has the value ``None``, ``a=`` has ``''``. Names and values
    are percent-decoded as UTF-8 (invalid sequences become U+FFFD) with ``+``
    as a space. A repeated name keeps its last value, as Starlette's
    ``request.query_params[name]`` does; ``querystr`` keeps every field.
    """
    result: dict[str, str | None] = {}
    for field in query.split("&"):
        if not field:
            continue
        name, sep, value = field.partition("=")
        result[unquote_plus(name)] = unquote_plus(value) if sep else None
    return result


def canonical_header_name(name: str) -> str:
    """``'content-type'`` -> ``'Content-Type'``: how the request dict spells names."""
    return "-".join(part.capitalize() for part in name.split("-"))


class RequestHeaders(dict[str, str]):
    """The request dict's ``headers``: a ``dict`` whose lookups ignore case.

    Keys are stored in canonical capitalisation (``'Content-Type'``), because
    the server sees names lower-cased and cannot give back the client's own
    spelling; ``headers['content-type']``, ``.get()`` and ``in`` accept any
    case.
    """

    def __missing__(self, key: str) -> str:
        if isinstance(key, str):
            canon = canonical_header_name(key)
            if canon != key and dict.__contains__(self, canon):
                return dict.__getitem__(self, canon)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        return isinstance(key, str) and dict.__contains__(self, canonical_header_name(key))

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        try:
            return self[key]
        except KeyError:
            return default


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    """ASGI header pairs -> ``RequestHeaders``.

    A header sent more than once becomes one entry, its values joined with
    ``', '`` (RFC 9110 section 5.3), except ``Cookie``, joined with ``'; '``
    (RFC 6265 section 5.4). Bytes are decoded as Latin-1, which never fails
    and keeps every byte.
    """
    headers = RequestHeaders()
    for raw_name, raw_value in raw:
        name = canonical_header_name(raw_name.decode("latin-1"))
        value = raw_value.decode("latin-1")
        previous = dict.get(headers, name)
        if previous is not None:
            value = previous + ("; " if name == "Cookie" else ", ") + value
        headers[name] = value
    return headers


# --- the response dict ---------------------------------------------------------

_REQUIRED = ("version", "statuscode", "headers", "message")
_KNOWN = frozenset((*_REQUIRED, "statusmsg"))
_VERSIONS = ("0.9", "1.0", "1.1")
# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: no CR, LF, NUL or other controls in a value (HTAB is fine).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NO_BODY_STATUSES = (204, 304)


class InvalidResponse(ValueError):
    """The callback's response dict cannot be sent; the message says why."""


class Reply(NamedTuple):
    """What goes on the wire for a valid response dict.

    ``reason`` is the status line's reason phrase (``None``: the standard
    one for ``status``); ``http_version`` is the status line's version,
    ``"1.1"`` or ``"1.0"`` (then the connection closes after the answer).
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reason: bytes | None = None
    http_version: str = "1.1"


def reason_phrase(text: str) -> bytes:
    """The status line bytes of a ``statusmsg``: Latin-1 when it fits (what HTTP
    clients decode a status line with, so it reads back exactly), else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def standard_reason(status: int) -> bytes:
    """The registered reason phrase of ``status`` (``b""`` for an unregistered code)."""
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _describe(value: object) -> str:
    return type(value).__name__


def build_reply(response: object, *, head: bool = False) -> Reply:
    """Validate a response dict and turn it into a ``Reply``.

    Raises ``InvalidResponse`` naming the first problem found. ``head`` is
    true for a ``HEAD`` request: the body is not sent, and a ``Content-Length``
    the callback sets (to announce the size a ``GET`` would have) is kept.
    """
    if not isinstance(response, dict):
        raise InvalidResponse(f"the callback returned {_describe(response)}, not a response dict")
    for key in _REQUIRED:
        if key not in response:
            raise InvalidResponse(f"the response dict has no {key!r} key")
    unknown = sorted(repr(k) for k in response if k not in _KNOWN)
    if unknown:
        raise InvalidResponse(
            f"the response dict has unknown key {', '.join(unknown)} "
            f"(known: version, statuscode, statusmsg, headers, message)"
        )

    version = response["version"]
    if not isinstance(version, str) or version not in _VERSIONS:
        raise InvalidResponse(f"version must be '0.9', '1.0' or '1.1', not {version!r}")

    status = response["statuscode"]
    if isinstance(status, bool) or not isinstance(status, int):
        raise InvalidResponse(f"statuscode must be an int, not {_describe(status)}")
    if not 100 <= status <= 599:
        raise InvalidResponse(f"statuscode {status} is outside 100..599")
    if status < 200:
        # A 1xx is an interim answer: the client would wait for a final one.
        raise InvalidResponse(
            f"statuscode {status} is informational (1xx) and cannot end a request; use 200..599"
        )

    statusmsg = response.get("statusmsg")
    reason: bytes | None = None
    if statusmsg is not None:
        if not isinstance(statusmsg, str):
            raise InvalidResponse(f"statusmsg must be a str, not {_describe(statusmsg)}")
        if _BAD_VALUE.search(statusmsg):
            # Refused, not cleaned: a CR/LF would end the status line early and
            # let the text forge headers; see docs/callback.md.
            raise InvalidResponse(
                f"statusmsg {statusmsg!r} contains a line break or control character"
            )
        reason = reason_phrase(statusmsg)

    body = _body(response["message"])
    http_1_0 = version != "1.1"
    headers, content_length, has_close = _headers(response["headers"], http_1_0)

    if status in _NO_BODY_STATUSES:
        if body:
            raise InvalidResponse(f"a {status} response has no body, but message is not empty")
    elif content_length is None:
        headers.append((b"content-length", b"%d" % len(body)))
    elif content_length != len(body) and not head:
        raise InvalidResponse(
            f"the Content-Length header says {content_length} bytes but the message has {len(body)}"
        )
    if http_1_0:
        # An HTTP/1.0 status line (HTTP/0.9 has none to send): the answer
        # ends its connection, said in a header as well for any ASGI server
        # that ignores the status line's version. See docs/callback.md.
        if not has_close:
            headers.append((b"connection", b"close"))
        if reason is None:
            reason = standard_reason(status)
        return Reply(status, headers, b"" if head else body, reason, "1.0")
    return Reply(status, headers, b"" if head else body, reason)


def _body(message: object) -> bytes:
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    if message is None:
        return b""
    raise InvalidResponse(f"message must be a str or bytes, not {_describe(message)}")


def _headers(
    given: object, http_1_0: bool = False
) -> tuple[list[tuple[bytes, bytes]], int | None, bool]:
    """The headers on the wire, the ``Content-Length`` given, and whether a
    ``Connection: close`` is among them. For an HTTP/1.0 answer, which always
    closes, a ``Connection`` header that keeps the connection is left out."""
    if not isinstance(given, Mapping):
        raise InvalidResponse(f"headers must be a dict, not {_describe(given)}")
    headers: list[tuple[bytes, bytes]] = []
    content_length: int | None = None
    has_close = False
    for name, value in given.items():
        if not isinstance(name, str):
            raise InvalidResponse(f"header name {name!r} must be a str, not {_describe(name)}")
        if not _TOKEN.fullmatch(name):
            raise InvalidResponse(
                f"header name {name!r} is not a valid field name "
                f"(no spaces, colons, line breaks or control characters)"
            )
        if not isinstance(value, str):
            raise InvalidResponse(f"header {name!r} value must be a str, not {_describe(value)}")
        if _BAD_VALUE.search(value):
            raise InvalidResponse(
                f"header {name!r} value {value!r} contains a line break or control character"
            )
        try:
            raw_value = value.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidResponse(
                f"header {name!r} value {value!r} has characters outside Latin-1"
            ) from None
        lower = name.lower()
        if lower == "transfer-encoding":
            raise InvalidResponse(
                "the Transfer-Encoding header is the server's to set: the body is sent "
                "with a Content-Length"
            )
        if lower == "content-length":
            if not value.isdigit() or not value.isascii():
                raise InvalidResponse(f"the Content-Length header {value!r} is not a number")
            if content_length is not None:
                # Names differing only in case: two lengths, conflicting framing.
                raise InvalidResponse("the headers dict sets Content-Length twice")
            content_length = int(value)
        elif lower == "connection":
            if "close" in (token.strip().lower() for token in value.split(",")):
                has_close = True
            elif http_1_0:
                continue  # this answer closes the connection whatever it says
        headers.append((lower.encode("ascii"), raw_value))
    return headers, content_length, has_close
