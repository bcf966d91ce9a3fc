"""The native framing's constants and events (frozen, slotted dataclasses).

The wire format is described in ``rawproto.proto.native`` and, byte by
byte, in ``docs/protocol.md``. Events made by callers are checked when they
are built; ``trusted_request`` and ``trusted_reply`` build events whose
fields are known to be in range already, without checking them again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dataserve.core.errors import LocalProtocolError

from .base import Event

__all__ = [
    "CODE",
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER",
    "HEAD_REST",
    "KIND_AUTH",
    "KIND_ERROR",
    "KIND_NAMES",
    "KIND_REPLY",
    "KIND_REQUEST",
    "MAGIC",
    "MAX_MESSAGE",
    "PREFACE",
    "PRE_AUTH_MAX_FRAME_SIZE",
    "VERSION",
    "Auth",
    "Error",
    "Preface",
    "Reply",
    "Request",
    "trusted_reply",
    "trusted_request",
]

MAGIC = b"\x89RPN"
VERSION = 1
#: What each side sends first: magic, version, flags (no flag is defined yet).
PREFACE = MAGIC + bytes([VERSION, 0])

KIND_REQUEST = 0x01
KIND_REPLY = 0x02
KIND_ERROR = 0x03
#: Token authentication: the client's first frame when the server has a token.
KIND_AUTH = 0x10

#: ``length, kind, tag, res_len, request_id``
HEADER = struct.Struct(">IBBHI")
HEAD_REST = HEADER.size - 4  # header bytes counted by ``length``
CODE = struct.Struct(">H")
MAX_ID = 0xFFFFFFFF
DEFAULT_MAX_FRAME_SIZE = 1024 * 1024 * 1024
#: Until a token has been presented, no frame may be longer than this: an
#: unauthenticated peer cannot make the server buffer more (Redis, after
#: CVE-2021-32675, caps unauthenticated requests the same way).
PRE_AUTH_MAX_FRAME_SIZE = 16 * 1024
# An error message longer than this is cut: it is a one-line explanation.
MAX_MESSAGE = 4096

KIND_NAMES = {KIND_REQUEST: "REQUEST", KIND_REPLY: "REPLY", KIND_ERROR: "ERROR", KIND_AUTH: "AUTH"}


def _check_id(request_id: int) -> None:
    if not 0 <= request_id <= MAX_ID:
        raise LocalProtocolError(f"a request id is 0..{MAX_ID}, not {request_id}")


def _check_tag(tag: int) -> None:
    if not 0 <= tag <= 0xFF:
        raise LocalProtocolError(f"a media tag is one byte, not {tag}")


@dataclass(frozen=True, slots=True)
class Preface(Event):
    """The opening bytes: magic, protocol version and flags."""

    version: int = VERSION
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Auth(Event):
    """The client's token (UTF-8 bytes), its first frame after the preface."""

    token: bytes

    def __repr__(self) -> str:
        return f"Auth(token=<{len(self.token)} bytes>)"  # a secret stays out of logs


@dataclass(frozen=True, slots=True)
class Request(Event):
    """Call ``resource`` with a payload of codec tag ``tag``."""

    request_id: int
    resource: str
    tag: int = 0
    body: bytes = b""

    def __post_init__(self) -> None:
        _check_id(self.request_id)
        _check_tag(self.tag)


@dataclass(frozen=True, slots=True)
class Reply(Event):
    """The handler's answer to request ``request_id``."""

    request_id: int
    tag: int = 0
    body: bytes = b""

    def __post_init__(self) -> None:
        _check_id(self.request_id)
        _check_tag(self.tag)


@dataclass(frozen=True, slots=True)
class Error(Event):
    """Request ``request_id`` failed with ``code`` (HTTP-like); 0 is the connection."""

    request_id: int
    code: int
    message: str = ""

    def __post_init__(self) -> None:
        _check_id(self.request_id)
        if not 0 <= self.code <= 0xFFFF:
            raise LocalProtocolError(f"an error code is 0..65535, not {self.code}")


# Constructors for events whose fields are known to be valid already: those
# the parser builds from a header it has unpacked and checked, and the
# answers a server builds for a request id it received. They skip
# ``__post_init__``'s checks and the frozen dataclass's ``__init__``; events
# made by callers keep both.
_new = object.__new__
_request_fields = tuple(getattr(Request, f).__set__ for f in Request.__slots__)
_reply_fields = tuple(getattr(Reply, f).__set__ for f in Reply.__slots__)


def trusted_request(request_id: int, resource: str, tag: int, body: bytes) -> Request:
    event = _new(Request)
    set_id, set_resource, set_tag, set_body = _request_fields
    set_id(event, request_id)
    set_resource(event, resource)
    set_tag(event, tag)
    set_body(event, body)
    return event


def trusted_reply(request_id: int, tag: int, body: bytes) -> Reply:
    """``Reply(request_id, tag, body)`` for a ``request_id`` received from the peer and a
    codec's tag: fields already known to be in range, so not checked again."""
    event = _new(Reply)
    set_id, set_tag, set_body = _reply_fields
    set_id(event, request_id)
    set_tag(event, tag)
    set_body(event, body)
    return event
