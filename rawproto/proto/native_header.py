"""What the native framing's preface and frame headers may say, checked before
any byte after them is buffered.

``read_preface`` checks the preface byte by byte as it arrives.
``HeaderCheck`` holds what a receiver allows, by its role, its frame size
limit and its token, and decides each frame header: over the limit, a kind
this side does not take, a resource where none belongs, a request before the
token. It also owns the handshake's one piece of state: whether the peer has
authenticated. Like the reader that uses it, it does no I/O.
"""

from __future__ import annotations

from dataserve.core.security import token_matches

from .base import FrameError, Role
from .native_events import (
    CODE,
    HEAD_REST,
    KIND_AUTH,
    KIND_ERROR,
    KIND_NAMES,
    KIND_REPLY,
    KIND_REQUEST,
    MAGIC,
    PRE_AUTH_MAX_FRAME_SIZE,
    PREFACE,
    VERSION,
    Auth,
    Preface,
)

__all__ = ["HeaderCheck", "read_preface"]


def read_preface(seen: bytes) -> Preface | None:
    """The preface, from the first bytes received (``None``: more are needed).

    Checked byte by byte as they arrive: "GET " or a TLS hello fails on its
    first byte instead of waiting for a whole preface.
    """
    if not MAGIC.startswith(seen[: len(MAGIC)]):
        got = seen[: len(MAGIC)].hex(" ")
        raise FrameError(
            f"not the rawproto native protocol: expected the preface {MAGIC.hex(' ')}, got {got}",
            400,
        )
    if len(seen) < len(PREFACE):
        return None
    version, flags = seen[4], seen[5]
    if version != VERSION:
        raise FrameError(
            f"unsupported native protocol version {version}; this side speaks {VERSION}",
            400,
        )
    return Preface(version, flags)


class HeaderCheck:
    """The frame headers a receiver takes: a server REQUEST (and AUTH first),
    a client REPLY and ERROR, none longer than ``max_frame_size``.

    ``frame`` raises ``FrameError`` for a header that is refused; one that is
    not ``fatal`` leaves the stream in step once the receiver skips the
    frame's body (``length - HEAD_REST`` bytes).
    """

    def __init__(self, role: Role, max_frame_size: int, token: bytes | None) -> None:
        self.role = role
        self.max_frame_size = max_frame_size
        self._accepts = (KIND_REQUEST,) if role is Role.SERVER else (KIND_REPLY, KIND_ERROR)
        self._token = token or None
        # The first frame after the preface may be AUTH (required with a token).
        self._first_frame = role is Role.SERVER
        #: The peer has sent the token, or none is required.
        self.authenticated = self._token is None

    def frame(self, length: int, kind: int, res_len: int, request_id: int) -> int:
        """Check a frame's header; the number of bytes of its body after it.

        A ``KIND_AUTH`` frame comes back from here only as a server's first
        frame; its body is the token, for ``token()``.
        """
        if self._first_frame:
            self._first_frame = False
            if kind == KIND_AUTH:
                return self._auth(length, res_len, request_id)
            if not self.authenticated:
                # Decided from the header: nothing of the frame is read.
                raise FrameError(
                    "this server requires a token: send it in an AUTH frame first", 401
                )
        if length > self.max_frame_size:
            raise FrameError(
                f"frame of {length} bytes is over the limit of {self.max_frame_size} bytes",
                413,
                request_id=request_id,
            )
        if length < HEAD_REST:
            raise FrameError(
                f"frame length {length} is shorter than the {HEAD_REST} header bytes it counts",
                400,
                request_id=request_id,
            )
        body = length - HEAD_REST
        if kind not in self._accepts:
            name = KIND_NAMES.get(kind)
            what = f"a {name} frame" if name else f"unknown frame kind 0x{kind:02x}"
            raise FrameError(
                f"{what} is not accepted by the {self.role.value}",
                400,
                fatal=False,
                request_id=request_id,
            )
        if kind == KIND_REQUEST and request_id == 0:
            raise FrameError("request id 0 is reserved for the connection", 400)
        if res_len > body or (res_len and kind != KIND_REQUEST):
            raise FrameError(
                f"resource length {res_len} does not fit a {kind:#04x} frame of {length} bytes",
                400,
                fatal=False,
                request_id=request_id,
            )
        if kind == KIND_ERROR and body < CODE.size:
            raise FrameError(
                "an ERROR frame needs at least its 2-byte code",
                400,
                fatal=False,
                request_id=request_id,
            )
        return body

    def _auth(self, length: int, res_len: int, request_id: int) -> int:
        # Fatal, all of them: an unauthenticated peer gets no second try on
        # this connection, and nothing of an oversized frame is buffered.
        if length > PRE_AUTH_MAX_FRAME_SIZE:
            raise FrameError(
                f"an AUTH frame of {length} bytes is over the limit of "
                f"{PRE_AUTH_MAX_FRAME_SIZE} bytes before authentication",
                413,
            )
        if length < HEAD_REST or res_len or request_id:
            raise FrameError("an AUTH frame has no resource and request id 0", 400)
        return length - HEAD_REST

    def token(self, data: bytes) -> Auth:
        """An AUTH frame's body is in: the peer is authenticated if it matches."""
        if self._token is not None and not token_matches(self._token, data):
            raise FrameError("wrong token", 401)
        self.authenticated = True
        return Auth(data)
