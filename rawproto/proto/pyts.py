"""pyts' wire protocol, sans-IO: bytes in, events out, ``send(event) -> bytes``.

The wire (pyts, "Python Transfer System", byte for byte): one connection
carries one exchange. The client sends one UTF-8 JSON document and the server
answers with one; there is no length prefix and no delimiter::

    {"headers": {"VERSION": "PYTS/1.0.0", "type": "REQUEST",
                 "REQUEST-URL": "pytf://HOST:PORT/ENDPOINT",
                 "HOST": "HOST", "PORT": PORT, "ENDPOINT": "/ENDPOINT", ...},
     "body": ...}

    {"headers": {"VERSION": "PYTS/1.0.0", "type": "RESPONSE",
                 "STATUS-TEXT": "OK", "STATUS-CODE": 200, "STATUS": "200 OK", ...},
     "body": ...}

Documents are written as Python's ``json.dumps`` writes them (``", "`` and
``": "`` separators, ASCII escapes, headers in the order they were set), which
is what the original sends, so its peers see the same bytes.

A document is complete when its top-level object closes. The original reads a
single ``recv(1024)``; here a small scanner follows strings and brackets as
bytes arrive, so a document of any size (up to ``Limits.max_body_size``, 413)
is recognised the moment its last byte arrives, and is parsed once.
A document is JSON, so ``Limits.max_structured_size`` (64 MiB) bounds it too,
and the core's budget for decoded structures (``dataserve.core.budget``)
refuses one whose value would take too much memory (413) before it is
parsed. ``Limits.max_depth`` bounds nesting before anything is parsed. Bytes after the
document are ignored: the exchange is over (the original ignores them too).
They do not count against the size limit either, however the stream is cut:
only the document, up to its closing brace, must fit in ``max_body_size``
(at most one byte more than that is ever buffered).

Decoding uses the standard library's ``json``, not the shared codec's orjson,
because pyts peers are Python programs using ``json``: integers beyond 64 bits
stay integers, and Python's 4300-digit limit on integer parsing applies. The
non-standard ``NaN``/``Infinity`` constants are refused.

Events (frozen, slotted dataclasses, ``rawproto.proto.base.Event``)::

    Request(headers, body)    what a client sends and a server receives
    Response(headers, body)   what a server sends and a client receives
    ConnectionClosed()        the peer closed before sending a byte

A peer's violation raises ``FrameError`` (a ``RemoteProtocolError``, always
fatal: the connection carries one exchange) whose ``status`` is the hint for
the answer: 400 (not JSON, not a pyts document, required headers missing) or
413 (too large); ``error_reply(error)`` is the server's answer document. A
server sends exactly one ``Response``; a second ``send`` raises
``LocalProtocolError``.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

from dataserve.core.budget import DecodeBudget
from dataserve.core.errors import LocalProtocolError, ProtocolError, StructureTooLarge
from dataserve.core.limits import DEFAULT_LIMITS, Limits

from .base import NEED_DATA, ConnectionClosed, Event, FrameError, NeedData, Role

__all__ = [
    "ALREADY_SENT",
    "NEED_DATA",
    "REQUIRED_REQUEST_HEADERS",
    "STATUS_TEXTS",
    "VERSION",
    "Connection",
    "ConnectionClosed",
    "DocumentScanner",
    "FrameError",
    "Request",
    "Response",
    "Role",
    "error_response",
    "not_found",
    "request_headers",
    "response_headers",
]

#: What ``send`` raises, by role, for a second document on one connection.
ALREADY_SENT = {
    Role.SERVER: "the response was already sent; a pyts connection carries one",
    Role.CLIENT: "the request was already sent; a pyts connection carries one",
}

VERSION = "PYTS/1.0.0"
#: The headers a request needs: the original server reads all three.
REQUIRED_REQUEST_HEADERS = ("HOST", "PORT", "ENDPOINT")
#: Status texts for the answers this side makes up itself.
STATUS_TEXTS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True, slots=True)
class Request(Event):
    """A pyts request document: ``headers`` (a dict) and a JSON-able ``body``."""

    headers: dict[str, Any]
    body: Any = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, dict):
            raise LocalProtocolError(f"headers are a dict, not {type(self.headers).__name__}")

    @property
    def endpoint(self) -> str:
        return str(self.headers.get("ENDPOINT", ""))


@dataclass(frozen=True, slots=True)
class Response(Event):
    """A pyts response document: ``headers`` (a dict) and a JSON-able ``body``."""

    headers: dict[str, Any]
    body: Any = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, dict):
            raise LocalProtocolError(f"headers are a dict, not {type(self.headers).__name__}")

    @property
    def status_code(self) -> int:
        code = self.headers.get("STATUS-CODE", 0)
        return code if isinstance(code, int) else 0

    @property
    def status_text(self) -> str:
        return str(self.headers.get("STATUS-TEXT", ""))


# --- headers, as the original sets them -----------------------------------------


def request_headers(host: str, port: int, endpoint: str) -> dict[str, Any]:
    """A request's headers in the original's order (``REQUEST-URL`` is ``pytf://``)."""
    return {
        "VERSION": VERSION,
        "type": "REQUEST",
        "REQUEST-URL": f"pytf://{host}:{port}{endpoint}",
        "HOST": host,
        "PORT": port,
        "ENDPOINT": endpoint,
    }


def response_headers(status: int | None = None, text: str | None = None) -> dict[str, Any]:
    """A response's headers; with a status, as ``Response.setStatus`` adds them."""
    headers: dict[str, Any] = {"VERSION": VERSION, "type": "RESPONSE"}
    if status is not None:
        set_status(headers, status, STATUS_TEXTS.get(status, "") if text is None else text)
    return headers


def set_status(headers: dict[str, Any], status: Any, text: Any) -> None:
    """Set the three status headers in the original's order."""
    headers["STATUS-TEXT"] = text
    headers["STATUS-CODE"] = status
    headers["STATUS"] = f"{status} {text}"


def error_response(status: int, message: str) -> Response:
    """The document this side answers an error with: the status and a message body."""
    return Response(response_headers(status), message)


def not_found(endpoint: str) -> Response:
    """The original's answer for an endpoint without a handler."""
    return Response(
        response_headers(404, "Not Found"),
        f"{endpoint} was not found on this server. (404 Not Found)",
    )


# --- finding the end of a document ------------------------------------------------

_WHITESPACE = b" \t\r\n"
_STRUCTURE = re.compile(rb'[{}\[\]"]')
_IN_STRING = re.compile(rb'["\\]')
_OPEN = frozenset(b"{[")


class DocumentScanner:
    """Finds where a JSON object ends, as its bytes arrive, in linear time.

    It follows strings (and their escapes) and brackets only; it does not
    validate: the complete document is parsed once afterwards. Nesting deeper
    than ``max_depth`` is refused as soon as it is seen.
    """

    __slots__ = ("_depth", "_escape", "_in_string", "_max_depth", "_pos", "_started", "end")

    def __init__(self, max_depth: int) -> None:
        self._max_depth = max_depth
        self._pos = 0
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._started = False
        #: Index just past the document's closing brace, once found.
        self.end: int | None = None

    @property
    def started(self) -> bool:
        """The document's opening brace has been seen."""
        return self._started

    def feed(self, buf: bytes | bytearray) -> int | None:
        """Scan what was added to ``buf`` since the last call; the end index or ``None``."""
        if self.end is not None:
            return self.end
        pos, n = self._pos, len(buf)
        if not self._started:
            while pos < n and buf[pos] in _WHITESPACE:
                pos += 1
            if pos == n:
                self._pos = pos
                return None
            if buf[pos] != 0x7B:  # "{"
                raise FrameError(
                    "not a pyts document: a document is a JSON object "
                    f"and starts with '{{', not {bytes(buf[pos : pos + 1])!r}",
                    400,
                )
            self._started = True
        depth, in_string = self._depth, self._in_string
        if self._escape:
            if pos >= n:
                return None
            pos += 1
            self._escape = False
        while pos < n:
            if in_string:
                m = _IN_STRING.search(buf, pos)
                if m is None:
                    pos = n
                    break
                pos = m.end()
                if buf[m.start()] == 0x5C:  # backslash: skip the escaped byte
                    if pos >= n:
                        self._escape = True
                        break
                    pos += 1
                else:
                    in_string = False
                continue
            m = _STRUCTURE.search(buf, pos)
            if m is None:
                pos = n
                break
            pos = m.end()
            char = buf[m.start()]
            if char == 0x22:  # '"'
                in_string = True
            elif char in _OPEN:
                depth += 1
                if depth > self._max_depth:
                    raise FrameError(
                        f"the document nests deeper than {self._max_depth} levels", 400
                    )
            else:
                depth -= 1
                if depth == 0:
                    self.end = pos
                    break
        self._pos, self._depth, self._in_string = pos, depth, in_string
        return self.end


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every document: json.loads() with an option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def decode_document(data: bytes) -> dict[str, Any]:
    """Parse a complete document (``FrameError`` 400 if it is not JSON)."""
    try:
        value = _DECODER.decode(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FrameError(f"not a pyts document: invalid UTF-8 at byte {exc.start}", 400) from None
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"not a pyts document: invalid JSON: {exc}", 400) from None
    if not isinstance(value, dict):  # the scanner saw "{", so this cannot happen
        raise FrameError("not a pyts document: not a JSON object", 400)
    return value


def encode_document(headers: dict[str, Any], body: Any) -> bytes:
    """A document as the original writes it: ``json.dumps`` of headers then body."""
    try:
        text = json.dumps({"headers": headers, "body": body})
    except (TypeError, ValueError, RecursionError) as exc:
        raise LocalProtocolError(f"cannot send this document as JSON: {exc}") from None
    return text.encode("utf-8")


def _validate(doc: dict[str, Any], role: Role) -> Request | Response:
    headers = doc.get("headers")
    if not isinstance(headers, dict):
        raise FrameError('not a pyts document: "headers" must be a JSON object', 400)
    if "body" not in doc:
        raise FrameError('not a pyts document: it has no "body"', 400)
    if role is Role.CLIENT:
        return Response(headers, doc["body"])
    missing = [name for name in REQUIRED_REQUEST_HEADERS if name not in headers]
    if missing:
        raise FrameError(
            f"the request is missing the header{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}",
            400,
        )
    if not isinstance(headers["ENDPOINT"], str):
        raise FrameError("the ENDPOINT header must be a string", 400)
    return Request(headers, doc["body"])


# --- the connection -----------------------------------------------------------------


class _State(enum.Enum):
    RECEIVING = "receiving"  # the peer's document is not complete yet
    RECEIVED = "received"  # it is: a server answers, a client is done
    BROKEN = "broken"  # the peer broke the protocol


class Connection:
    """One side of a pyts exchange (``rawproto.proto.base.ProtocolConnection``).

    A client ``send``\\ s its ``Request`` first, then feeds the answer to
    ``receive_data`` and reads a ``Response`` from ``next_event``. A server
    feeds the request, reads a ``Request``, and ``send``\\ s one ``Response``,
    or answers a ``FrameError`` with ``error_reply``. After the peer's
    document, ``next_event`` returns ``NEED_DATA``, even at EOF: a client may
    shut down its sending side and still wait for the answer.
    """

    handshake_complete = True  # pyts has no handshake

    def __init__(self, role: Role, limits: Limits = DEFAULT_LIMITS) -> None:
        self.role = role
        self.limits = limits
        # A document is JSON: the core's budget for decoded structures applies,
        # and its size limit bounds documents along with max_body_size.
        self._budget = DecodeBudget.from_limits(limits)
        self._limit = min(limits.max_body_size, limits.max_structured_size)
        self._buffer = bytearray()
        self._scanner = DocumentScanner(limits.max_depth)
        self._eof = False
        self._state = _State.RECEIVING
        self._error: FrameError | None = None
        self._sent = False

    @property
    def mid_frame(self) -> bool:
        """Part of the peer's document has arrived and the rest has not."""
        # The scanner has seen the opening brace (whitespace before it is idle).
        return self._state is _State.RECEIVING and self._scanner.started

    @property
    def complete(self) -> bool:
        """The peer's document has been received whole."""
        return self._state is _State.RECEIVED

    @property
    def response_sent(self) -> bool:
        """This side's document has been sent (or an error answered)."""
        return self._sent

    def initiate(self) -> bytes:
        return b""

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Feed bytes read from the socket; ``None`` (or ``b""``) means EOF."""
        if not data:
            self._eof = True
            return
        if self._state is not _State.RECEIVING:
            return  # the document is complete: what follows is not part of it
        # Keep one byte past the limit: enough to tell "ends within the limit"
        # from "does not"; whatever follows is past the document or over it.
        room = self._limit + 1 - len(self._buffer)
        if room > 0:
            self._buffer += data[:room] if len(data) > room else data

    def _fail(self, exc: FrameError) -> None:
        self._error = exc
        self._state = _State.BROKEN
        self._buffer = bytearray()

    def next_event(self) -> Event | NeedData:
        """The peer's document once it is whole; ``NEED_DATA`` before and after it."""
        if self._error is not None:
            raise self._error
        if self._state is not _State.RECEIVING:
            return NEED_DATA
        if not self._scanner.started:
            whole = self._whole_document()
            if whole is not None:
                return whole
        try:
            end = self._scanner.feed(self._buffer)
            limit = self._limit
            if (end is None and len(self._buffer) > limit) or (end is not None and end > limit):
                which = (
                    " for JSON (max_structured_size)" if limit < self.limits.max_body_size else ""
                )
                raise FrameError(f"the document exceeds the limit of {limit} bytes{which}", 413)
            if end is None:
                if not self._eof:
                    return NEED_DATA
                if not self._buffer.strip():
                    # Connected and left without a word: nothing to answer.
                    self._state = _State.BROKEN
                    return ConnectionClosed()
                raise FrameError("connection closed before the document was complete", 400)
            document = bytes(self._buffer[:end])
            self._buffer = bytearray()  # one copy of the document at a time
            try:
                # Before anything is parsed: the memory the value would take.
                self._budget.check_json(document)
            except StructureTooLarge as exc:
                raise FrameError(exc.message, 413) from None
            event = _validate(decode_document(document), self.role)
            del document
        except FrameError as exc:
            self._fail(exc)
            raise
        self._buffer = bytearray()
        self._state = _State.RECEIVED
        return event

    def _whole_document(self) -> Request | Response | None:
        """The usual case, at C speed: the first bytes are one small document, whole.

        Tried once, before the scanner starts, when the bytes are a ``{``...``}``
        within the size that needs no budget estimate and hold too few
        brackets to nest deeper than ``max_depth``: then whether they parse
        as one JSON object says whether the document is complete, and the
        scanner, which would find the same end, is not needed. Anything else
        (part of a document, bytes after it, not JSON) returns ``None``, and
        the scanner decides as it always does.
        """
        buf = self._buffer
        if (
            len(buf) > self._budget.json_unchecked
            or len(buf) > self._limit
            or not buf.rstrip(_WHITESPACE).endswith(b"}")
            or not buf.lstrip(_WHITESPACE).startswith(b"{")
            or buf.count(b"{") + buf.count(b"[") > self.limits.max_depth
        ):
            return None
        try:
            event = _validate(decode_document(bytes(buf)), self.role)
        except FrameError:
            return None  # incomplete, not JSON, not a request: the scanner says which
        self._buffer = bytearray()
        self._state = _State.RECEIVED
        return event

    def send(self, event: Event) -> bytes:
        """The bytes of ``event``; each side sends exactly one document."""
        if self._sent:
            raise LocalProtocolError(ALREADY_SENT[self.role])
        if self.role is Role.SERVER:
            if not isinstance(event, Response):
                raise LocalProtocolError(f"a server sends a Response, not {type(event).__name__}")
        elif not isinstance(event, Request):
            raise LocalProtocolError(f"a client sends a Request, not {type(event).__name__}")
        data = encode_document(event.headers, event.body)
        self._sent = True
        return data

    def error_reply(self, error: ProtocolError) -> bytes:
        """The server's answer to ``error``: a document with its status and message.

        Empty if the answer was already sent (there is one per connection)
        and on the client side.
        """
        if self.role is Role.CLIENT or self._sent:
            return b""
        return self.send(error_response(error.status, error.message))
