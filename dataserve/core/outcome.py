"""What a request is answered, whatever happened: one policy for every transport.

Pure functions from what happened to an ``Outcome`` (a status, the encoded
answer or a one-line message); each transport turns an outcome into its own
bytes (an HTTP status line, a native error frame, a tcpy error map, a pyts
status). No I/O here.

====================================  ======  ===============================================
what happened                         status  message
====================================  ======  ===============================================
the handler returned a value          200     (the encoded value)
it returned ``None``                  404     ``resource '/x' is not handled``
the body has no codec / is malformed  415/400 the codec's own message
the handler raised ``DataServeError``  its     its message: raised on purpose, for the peer
the handler raised anything else      500     the exception's type only, never its text
the answer cannot be encoded          500     what the codec says is wrong
no answer within ``handler_timeout``  504     ``the handler did not answer within 300 s``
the server shut down first            503     ``the server shut down ...; send it again``
====================================  ======  ===============================================

An exception's text may hold anything (paths, values, secrets), so it goes
to the server log, never to the peer, unless the handler raised one of ours
on purpose (``raise dataserve.NotHandled(...)``, ``BadRequest(...)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import CodecError, DataServeError, TransportError

__all__ = [
    "Outcome",
    "answered",
    "cannot_encode",
    "codec_failed",
    "handler_raised",
    "not_handled",
    "shut_down",
    "timed_out",
]


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a microsecond to build
class Outcome:
    """A request's answer: ``status`` 200 with ``media`` and ``body``, or an error.

    ``media`` is what the transport needs to say what the body is: the media
    type for HTTP, the codec's tag for the native framing.

    ``retry`` says the request never reached the handler, so sending it again
    is safe (HTTP adds ``Retry-After``).
    """

    status: int
    media: Any = None
    body: Any = b""
    message: str = ""
    retry: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200


def answered(media: Any, body: Any) -> Outcome:
    return Outcome(200, media, body)


def not_handled(resource: str) -> Outcome:
    return Outcome(404, message=f"resource {resource!r} is not handled")


def codec_failed(exc: CodecError) -> Outcome:
    """The body has no codec (415) or does not decode (400), or is over a limit (413)."""
    return Outcome(exc.status, message=exc.message)


def handler_raised(resource: str, exc: BaseException, what: str = "the handler") -> Outcome:
    """``what`` names what raised, for facades with their own words ("the callback",
    "command 'add'"); ``resource`` may be empty (the message then names none)."""
    if (
        isinstance(exc, DataServeError)
        and not isinstance(exc, TransportError)
        and exc.message
        and 400 <= exc.status < 600
    ):
        # Raised on purpose (``raise BadRequest("...")``): its status and its
        # message are for the peer. A client's TransportError is not: it comes
        # from a call the handler made, and names another server.
        return Outcome(exc.status, message=exc.message)
    where = f" for {resource}" if resource else ""
    return Outcome(500, message=f"{what} raised {type(exc).__name__}{where} (see the server log)")


def cannot_encode(resource: str, exc: DataServeError) -> Outcome:
    return Outcome(
        500, message=f"the handler's answer for {resource} cannot be sent: {exc.message}"
    )


def timed_out(timeout: float, what: str = "the handler") -> Outcome:
    return Outcome(504, message=f"{what} did not answer within {timeout:g} s")


def shut_down(started: bool, what: str = "the handler") -> Outcome:
    if started:
        return Outcome(503, message=f"the server shut down before {what} answered")
    return Outcome(
        503, message=f"the server shut down before {what} ran; send it again", retry=True
    )
