"""``TinySession``: a tinyproto connection on the engine's loop.

It moves messages between the wire (the sans-IO ``rawproto.proto.tinyproto``
connection) and the connection's hook thread: messages received go to the
thread's inbox, and messages the thread transmits are announced, sent once
the peer accepts them, and reported back through a ``Waiter``. When the
thread falls behind, the session holds reading until it catches up.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import TYPE_CHECKING

from dataserve.core.errors import RemoteProtocolError

from ..engine import Connection, Session
from ..proto.base import Role
from ..proto.tinyproto import (
    SC_CONLIMIT,
    Accept,
    Accepted,
    Announce,
    Handshake,
    Message,
    Refuse,
    Refused,
)
from ..proto.tinyproto import TinyProtoConnection as _Protocol
from .bridge import CLOSED, DRAIN, READY, MessageRefused, TinyProtoError, Waiter

if TYPE_CHECKING:
    from . import TinyProtoConnection

__all__ = ["TinySession"]

# Messages received but not yet handed to the hooks: above either mark the
# engine stops reading from the peer until the connection's thread catches up.
_QUEUED_BYTES_HIGH = 64 * 1024 * 1024
_QUEUED_MESSAGES_HIGH = 1024


class TinySession(Session):
    """Runs on the engine's loop: moves messages between the wire and a connection's thread."""

    concurrent = True

    def __init__(
        self,
        conn: Connection,
        owner: TinyProtoConnection,
        max_message_size: int,
        admit: Callable[[TinySession], bool] | None = None,
    ) -> None:
        super().__init__(conn, _Protocol(Role.SERVER, max_message_size=max_message_size))
        self.tiny: _Protocol = self.proto  # type: ignore[assignment]
        self.owner = owner
        self.outgoing: collections.deque[tuple[bytes, Waiter]] = collections.deque()
        self.sending: tuple[bytes, Waiter] | None = None
        # Messages handed to the connection's thread (counted on the loop) and
        # taken by it (counted on the thread); the difference is its backlog.
        self.queued_bytes = 0
        self.queued_messages = 0
        self.taken_bytes = 0
        self.taken_messages = 0
        #: Reading may be held for the backlog: the thread wakes the loop on each take.
        self.holding = False
        self.ready: asyncio.Future[None] = conn.loop.create_future()
        self._admit = admit  # the server's connection limit and bookkeeping
        # Graceful shutdown: done once the connection's thread has finished.
        self._draining: asyncio.Future[None] | None = None
        self._drain_posted = False
        self._hooks_finished = False
        owner._attach(self)

    def opened(self) -> None:
        # Only admitted connections get here (the engine refuses above its own
        # limit first); the server's connection_limit answers 0xfe instead.
        if self._admit is not None and not self._admit(self):
            self.conn.write(self.tiny.send(Refuse(SC_CONLIMIT)))
            self.conn.close()
            return
        super().opened()

    @property
    def busy(self) -> bool:
        return self.sending is not None or bool(self.outgoing)

    @property
    def hold_reading(self) -> bool:
        # Raised before the counts are read: a take that the counts miss
        # sees the flag and wakes the loop (conn.update_flow) to look again.
        self.holding = True
        held = (
            self.queued_bytes - self.taken_bytes > _QUEUED_BYTES_HIGH
            or self.queued_messages - self.taken_messages > _QUEUED_MESSAGES_HIGH
        )
        self.holding = held
        return held

    def handle(self, event: object) -> None:
        conn = self.conn
        if type(event) is Announce:
            # Shutting down: what was accepted is handled; nothing new is taken.
            conn.send(Accept() if self._draining is None else Refuse())
            self._post_drain()
        elif type(event) is Message:
            data = event.data
            assert isinstance(data, bytearray)
            self.queued_bytes += len(data)
            self.queued_messages += 1
            self.owner._inbox.put(("msg", data))
            self._post_drain()
        elif type(event) is Accepted:
            assert self.sending is not None
            data, future = self.sending
            conn.send(Message(data))
            if not conn.flush():
                conn.loop.create_task(self._sent(future))
                return  # the next message waits until this one is written
            future.set_result(None)  # handed to the kernel already
            self.sending = None
        elif type(event) is Refused:
            assert self.sending is not None
            _, future = self.sending
            self.sending = None
            if not future.done():
                future.set_exception(MessageRefused(f"the peer refused it ({event.reason})"))
        elif type(event) is Handshake:
            if not self.ready.done():
                self.ready.set_result(None)
            self.owner._inbox.put((READY, None))
        self._next_message()

    async def _sent(self, future: Waiter) -> None:
        try:
            await self.conn.drain(empty=True)
        except ConnectionError as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(None)
        self.sending = None
        self._next_message()

    def transmit(self, data: bytes, waiter: Waiter) -> None:
        """Queue a message of the connection's thread (called on the loop)."""
        if self.conn.is_closed:
            waiter.set_exception(ConnectionResetError("connection closed"))
            return
        self.outgoing.append((data, waiter))
        self._next_message()

    def _next_message(self) -> None:
        if self.sending is None and self.outgoing and self.tiny.can_announce:
            if self.conn.is_closed:
                return
            self.sending = self.outgoing.popleft()
            self.conn.send(Announce(len(self.sending[0])))

    # --- graceful shutdown ---------------------------------------------------------

    def closing(self) -> asyncio.Future[None] | None:
        """Keep the connection until its thread has handled what was accepted."""
        if self._hooks_finished or self.owner._hooks is None:
            return None  # no thread (any more) to wait for
        self._draining = self.conn.loop.create_future()
        self._post_drain()
        return self._draining

    def _post_drain(self) -> None:
        # After the last message accepted (none may be on its way), the
        # thread finds the drain marker and ends.
        if self._draining is not None and not self._drain_posted and not self.tiny.announced:
            self._drain_posted = True
            self.owner._inbox.put((DRAIN, None))

    def hooks_done(self) -> None:
        """The connection's thread ended (its post_loop has run)."""
        self._hooks_finished = True
        if self._draining is not None and not self._draining.done():
            self._draining.set_result(None)

    def _not_ready(self, error: TinyProtoError) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # only a connecting client awaits it: no "never retrieved"

    def failed(self, exc: RemoteProtocolError) -> None:
        self._not_ready(TinyProtoError(exc.message))
        super().failed(exc)

    def closed(self, exc: BaseException | None) -> None:
        error = ConnectionResetError("connection closed")
        pending = list(self.outgoing)
        self.outgoing.clear()
        if self.sending is not None:
            pending.append(self.sending)
            self.sending = None
        for _, future in pending:
            if not future.done():
                future.set_exception(error)
        self._not_ready(
            TinyProtoError(
                "the server closed the connection during the handshake (as a tinyproto "
                "server over its connection limit does)"
            )
        )
        self.owner._inbox.put((CLOSED, None))
