"""One request's ASGI exchange on a connection: ``receive()`` and ``send()``.

The body reaches the app in one of two ways (how it is kept and read on
the way is ``dataserve.http.body``'s):

* **streamed** (plain ASGI, the default): pieces as they arrive, reading
  paused while more than ``STREAM_HIGH_WATER`` bytes wait for the app (the
  callback API reads bodies this way, in constant memory);
* **whole**, when the app asks through the ASGI extension
  ``dataserve.whole_body`` (``await scope["extensions"]["dataserve.whole_body"]
  ["read"](max_size, timeout)``, instead of ``receive()``): the body is read
  into one buffer of its announced length, straight from the socket
  (``dataserve.core.buffers``), and comes back as one ``http.request``
  message: no pieces, no join, no event-loop turn per piece. A chunked body
  grows one buffer. If it crosses ``max_size``, or nothing arrives for
  ``timeout`` seconds, the message is ``{"type": "dataserve.body_too_large"}``
  or ``{"type": "dataserve.body_stalled"}`` (with ``received``, the bytes
  read) and nothing more is read: the app answers 413 or 408 and closes.
  Only an app called by the server itself uses it (middleware wrapping
  ``receive`` would not see the body).

``send()`` accepts two more keys in ``http.response.start``:
``"dataserve.reason"`` (the status line's reason phrase, any printable
text) and ``"dataserve.http_version"`` (``"1.0"`` writes an HTTP/1.0 status
line and closes the connection after the answer); the callback API needs
both. A body may be a ``memoryview``: it is written without a copy.
"""

from __future__ import annotations

import http
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from ..core.buffer_cache import BufferCache
from ..core.deadlines import Watchdog
from .body import STREAM_HIGH_WATER, RequestBody
from .flow import ReadFlow, WriteFlow
from .head import Head

__all__ = ["STREAM_HIGH_WATER", "WHOLE_BODY", "Connection", "Cycle"]

logger = logging.getLogger("uvicorn.error")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[Any]]

#: The ASGI extension's name (in ``scope["extensions"]``) and message type.
WHOLE_BODY = "dataserve.whole_body"

# Header names are tokens; values have no control characters but tab (RFC 9110 5.5).
_BAD_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_REASON = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


def _status_line(version: bytes, status: int, reason: bytes | None = None) -> bytes:
    if reason is None:
        try:
            reason = http.HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
    return b"HTTP/%s %d %s\r\n" % (version, status, reason)


class Connection(Protocol):
    """What a cycle needs of its connection (``dataserve.http.protocol``)."""

    transport: Any
    read_flow: ReadFlow
    write_flow: WriteFlow
    watchdog: Watchdog
    server_state: Any
    buffer_cache: BufferCache | None

    def on_response_complete(self, cycle: Cycle) -> None: ...

    def close_lingering(self) -> None: ...


_STATUS_LINES = {status: _status_line(b"1.1", status) for status in range(100, 600)}


class Cycle:
    """One request's exchange with the app: its body handed on, its answer written.

    The body itself, as it arrives and as the app takes it, is ``body``'s
    (``dataserve.http.body``); the cycle gives the app ``receive()`` and
    ``send()``, checks the order of the app's messages, writes the answer,
    and runs the app.
    """

    __slots__ = (
        "body",
        "chunked_reply",
        "conn",
        "disconnected",
        "keep_alive",
        "remaining_reply",
        "response_complete",
        "response_started",
        "scope",
        "waiting_for_100",
    )

    def __init__(self, conn: Connection, scope: Message, head: Head, *, keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.waiting_for_100 = head.expect_100
        #: The request's body: the connection feeds it, the app takes it.
        self.body = RequestBody(
            conn.read_flow,
            conn.watchdog,
            length=head.length,
            has_body=head.has_body,
            cache=conn.buffer_cache,
        )
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.chunked_reply: bool | None = None
        self.remaining_reply = 0
        # Per request: the one ASGI extension's entry point is this cycle's.
        scope["extensions"] = {WHOLE_BODY: {"read": self.read_whole}}

    def lost(self) -> None:
        """The connection is gone."""
        if not self.response_complete:
            self.disconnected = True
        self.body.close()

    # --- the app's side -------------------------------------------------------

    async def receive(self) -> Message:
        self._go_ahead()
        return await self.body.receive()

    def read_whole(self, max_size: int, timeout: float) -> Awaitable[Message]:
        """The whole body in one message (the ``dataserve.whole_body`` extension).

        Not a coroutine of its own: the body's is awaited directly (one frame
        less per request)."""
        if not self.response_started:
            self.body.want_whole(max_size, timeout)
        self._go_ahead()
        return self.body.receive_whole()

    def _go_ahead(self) -> None:
        """A client waiting for ``100 Continue`` gets it when the app first asks for the body."""
        if self.waiting_for_100:
            self.waiting_for_100 = False
            if not self.conn.transport.is_closing():
                self.conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def send(self, message: Message) -> None:
        kind = message["type"]
        conn = self.conn
        if conn.write_flow.paused and not self.disconnected:
            await conn.write_flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got {kind!r}."
                )
            self._start(message)
        elif not self.response_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
            self._write_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(
                f"Unexpected ASGI message {kind!r} sent, after response already completed."
            )

    def _start(self, message: Message) -> None:
        self.response_started = True
        self.waiting_for_100 = False
        status: int = message["status"]
        version = message.get("dataserve.http_version")
        reason = message.get("dataserve.reason")
        if version == "1.0":
            self.keep_alive = False
            line = _status_line(b"1.0", status, None if reason is None else _reason(reason))
        elif reason is not None:
            line = _status_line(b"1.1", status, _reason(reason))
        else:
            line = _STATUS_LINES[status]
        content = [line]
        close_sent = False
        for name, value in (*self.conn.server_state.default_headers, *message.get("headers", ())):
            if _BAD_NAME.search(name):
                raise RuntimeError("Invalid HTTP header name.")
            if _BAD_VALUE.search(value):
                raise RuntimeError("Invalid HTTP header value.")
            name = name.lower()
            if name == b"content-length" and self.chunked_reply is None:
                self.remaining_reply = int(value)
                self.chunked_reply = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.remaining_reply = 0
                self.chunked_reply = True
            elif name == b"connection" and b"close" in [
                t.strip().lower() for t in value.split(b",")
            ]:
                self.keep_alive = False
                close_sent = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not close_sent:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_reply is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            self.chunked_reply = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        self.conn.transport.write(b"".join(content))

    def _write_body(self, body: bytes | memoryview, more_body: bool) -> None:
        transport = self.conn.transport
        if self.scope["method"] == "HEAD":
            self.remaining_reply = 0
        elif self.chunked_reply:
            if body:
                transport.write(b"%x\r\n" % len(body))
                transport.write(body)
                transport.write(b"\r\n")
            if not more_body:
                transport.write(b"0\r\n\r\n")
        elif body:
            if len(body) > self.remaining_reply:
                raise RuntimeError("Response content longer than Content-Length")
            self.remaining_reply -= len(body)
            transport.write(body)
        if not more_body:
            if self.remaining_reply != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.body.close()
            if not self.keep_alive:
                if self.body.more_body:
                    self.conn.close_lingering()  # the peer may still be sending the body
                else:
                    transport.close()
            self.conn.on_response_complete(self)

    # --- running the app --------------------------------------------------------

    async def run_asgi(self, app: ASGIApp) -> None:
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self._send_500()
            else:
                self.conn.transport.close()
        else:
            if result is not None:
                logger.error("ASGI callable should return None, but returned '%s'.", result)
                self.conn.transport.close()
            elif not self.response_started and not self.disconnected:
                logger.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.response_complete and not self.disconnected:
                logger.error("ASGI callable returned without completing response.")
                self.conn.transport.close()
        finally:
            self.body.drop()

    async def _send_500(self) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                    (b"connection", b"close"),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})


def _reason(reason: Any) -> bytes:
    """A reason phrase from the app: any printable text (RFC 9112 4: HTAB, SP, VCHAR, obs-text)."""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    if not isinstance(reason, (bytes, bytearray)) or _BAD_REASON.search(reason):
        raise RuntimeError(f"Invalid HTTP reason phrase: {reason!r}")
    return bytes(reason)
