"""One exception tree for dataserve and rawproto.

::

    DataServeError                   base of everything raised on purpose
    ├── CodecError                   a value or a body the codec cannot handle
    │   ├── UnsupportedMediaType     no codec for the media type        (415)
    │   ├── DecodeError              the body is not what it claims     (400)
    │   ├── EncodeError              the value has no codec             (500)
    │   └── StructureTooLarge        JSON/msgpack over its budget       (413)
    ├── LimitExceeded                a configured limit was crossed     (413)
    │   └── StructureTooLarge        (also a CodecError)
    ├── ProtocolError                the peer broke the wire protocol
    │   ├── LocalProtocolError       we were asked to send something invalid
    │   └── RemoteProtocolError      the peer sent something invalid
    ├── TransportError               a request got no answer (client side)
    │   ├── ConnectError             could not connect, says to where   (+ ConnectionError)
    │   ├── TimeoutError             no answer in time                  (+ builtins.TimeoutError)
    │   └── ConnectionClosed         the peer closed mid-exchange       (+ ConnectionError)
    └── ResponseError                the server answered with an error status
        ├── BadRequest               400
        ├── Unauthorized             401
        ├── NotHandled               404: the handler returned None
        ├── MethodNotAllowed         405
        ├── RequestTimeout           408
        ├── PayloadTooLarge          413
        ├── UnsupportedMediaTypeError 415
        ├── HandlerError             500: the handler raised
        ├── ServiceUnavailable       503
        └── GatewayTimeout           504

The three transport errors also derive from Python's own
(``ConnectionError``, ``builtins.TimeoutError``), so code written against the
standard library (``except TimeoutError:``, ``except ConnectionError:``)
catches them too; ``except DataServeError:`` still catches everything.

Server-side errors carry the HTTP status they map to (``status``); every
transport turns them into its own answer (an HTTP status, an error frame, a
refusal byte) with the same meaning. Client-side ``ResponseError`` subclasses
are chosen from the status (or the native error frame's code, which uses the
same numbers), so ``HTTPDataClient`` and ``rawproto.RawDataClient`` raise the
same exceptions for the same failure.
"""

from __future__ import annotations

import builtins

__all__ = [
    "BadRequest",
    "CodecError",
    "ConnectError",
    "ConnectionClosed",
    "DataServeError",
    "DecodeError",
    "EncodeError",
    "GatewayTimeout",
    "HandlerError",
    "LimitExceeded",
    "LocalProtocolError",
    "MethodNotAllowed",
    "NotHandled",
    "PayloadTooLarge",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestTimeout",
    "ResponseError",
    "ServiceUnavailable",
    "StructureTooLarge",
    "TimeoutError",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UnsupportedMediaTypeError",
    "error_for_status",
]


class DataServeError(Exception):
    """Base class of every exception dataserve and rawproto raise on purpose."""

    #: The HTTP status this error maps to when a server reports it.
    status: int = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


# --- codec -----------------------------------------------------------------


class CodecError(DataServeError):
    """A body or value that the codec registry cannot handle."""

    status = 400


class UnsupportedMediaType(CodecError):
    """The media type has no registered codec."""

    status = 415


class DecodeError(CodecError):
    """The body does not decode as its media type says (bad JSON, bad UTF-8...)."""

    status = 400


class EncodeError(CodecError):
    """A value (usually a handler's return value) that no codec can encode."""

    status = 500


class LimitExceeded(DataServeError):
    """A configured limit (body size, frame size...) was crossed."""

    status = 413


class StructureTooLarge(CodecError, LimitExceeded):
    """A JSON or msgpack body over the structured-data budget (413).

    Too many bytes (``max_structured_size``), an array or map longer than
    ``max_container_len``, or a body that would take more memory decoded than
    the budget allows (``dataserve.core.budget``). A ``CodecError``, so every
    transport that answers decode failures answers this one too, with its
    status; a ``LimitExceeded``, because that is what it is.
    """

    status = 413


# --- wire protocol ---------------------------------------------------------


class ProtocolError(DataServeError):
    """The wire protocol was broken. ``status`` is the hint for the answer."""

    def __init__(self, message: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


# --- client side: no answer ------------------------------------------------


class TransportError(DataServeError):
    """The request got no answer: connection, timeout or protocol failure."""


# Each also derives from the built-in exception a Python user already catches
# for this failure (socket and asyncio code raise those), so the name stays
# ours and ``except TimeoutError:`` / ``except ConnectionError:`` still work.


class ConnectError(TransportError, ConnectionError):
    """Could not connect to the server; the message names the address."""


class TimeoutError(TransportError, builtins.TimeoutError):
    """No answer within the configured timeout."""


class ConnectionClosed(TransportError, ConnectionError):
    """The peer closed the connection before the exchange was complete."""


# --- client side: an error answer ------------------------------------------


class ResponseError(DataServeError):
    """The server answered with an error status.

    ``status`` is the HTTP status (or the native error frame's code, which uses
    the same numbers) and ``message`` the server's explanation.
    """

    def __init__(self, message: str = "", status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.message else str(self.status)


class BadRequest(ResponseError):
    status = 400


class Unauthorized(ResponseError):
    status = 401


class NotHandled(ResponseError):
    """The handler returned ``None``: the resource is not handled (404)."""

    status = 404


class MethodNotAllowed(ResponseError):
    status = 405


class RequestTimeout(ResponseError):
    status = 408


class PayloadTooLarge(ResponseError):
    status = 413


class UnsupportedMediaTypeError(ResponseError):
    status = 415


class HandlerError(ResponseError):
    """The handler raised (500)."""

    status = 500


class ServiceUnavailable(ResponseError):
    status = 503


class GatewayTimeout(ResponseError):
    status = 504


_BY_STATUS: dict[int, type[ResponseError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        NotHandled,
        MethodNotAllowed,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaTypeError,
        HandlerError,
        ServiceUnavailable,
        GatewayTimeout,
    )
}


def error_for_status(status: int, message: str) -> ResponseError:
    """The ``ResponseError`` for an error status, used by every client."""
    cls = _BY_STATUS.get(status, ResponseError)
    return cls(message, status=status)
