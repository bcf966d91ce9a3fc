"""The API a framing implements on the engine: ``Session`` and ``Service``.

A ``Service`` (one per server) makes a ``Session`` for each connection; the
session is the glue between the engine's ``Connection`` and one sans-IO
protocol object. ``ConnectionCounter`` is what a server reports its
connections to. See ``rawproto.engine`` for how the engine calls each hook.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dataserve.core.buffers import BodyBuffer
from dataserve.core.errors import RemoteProtocolError

from ..proto.base import NEED_DATA, ProtocolConnection

if TYPE_CHECKING:
    from . import Connection

__all__ = ["ConnectionCounter", "PayloadSink", "Service", "Session", "SessionFactory"]


class PayloadSink(Protocol):
    """Where a large payload is read as it arrives (``dataserve.core.buffers.BodyBuffer``
    is one): the connection reads into ``remaining()`` and reports each read with
    ``advance(n)``; once ``complete``, ``finish()`` is what the protocol gets
    (``receive_payload``: the payload's bytes, or ``None`` for a sink that
    passed them on elsewhere)."""

    def remaining(self) -> memoryview: ...

    def advance(self, n: int) -> None: ...

    @property
    def complete(self) -> bool: ...

    def finish(self) -> bytes | None: ...

    def discard(self) -> None: ...


class Session:
    """Per-connection glue between the engine and one sans-IO protocol object.

    Subclass it and override ``handle``. ``self.conn`` is the engine's
    ``Connection`` (``send``, ``write``, ``close``, ``drain``...),
    ``self.proto`` the protocol object.

    ``poll`` is how the engine takes events from the protocol; the default
    calls ``proto.next_event()`` and treats ``NEED_DATA`` (from
    ``rawproto.proto.base``) or ``None`` as "no event yet". Override it for a
    protocol with another sentinel.
    """

    #: True: awaitables returned by ``handle`` run concurrently (pipelining).
    #: False: the engine takes no further event while one is in flight.
    concurrent: ClassVar[bool] = False

    def __init__(self, conn: Connection, proto: ProtocolConnection) -> None:
        self.conn = conn
        self.proto = proto

    # --- protocol access (the engine's side) ---------------------------------

    def opened(self) -> None:
        """The connection is up: send the protocol's opening bytes, if any."""
        data = self.proto.initiate()
        if data:
            self.conn.write(data)

    def poll(self) -> object | None:
        """The next event from the protocol, or ``None`` if it needs more data."""
        event = self.proto.next_event()
        if event is NEED_DATA:
            return None
        return event

    # --- application (yours) ---------------------------------------------------

    def handle(self, event: object) -> Awaitable[Any] | None:
        """Act on one event; return an awaitable for work that continues.

        The engine counts the awaitable as in flight until it completes and
        logs (and closes the connection on) any exception it raises. The
        default ignores every event.
        """
        return None

    def failed(self, exc: RemoteProtocolError) -> None:
        """The peer broke the protocol, or a deadline passed.

        Default: send ``proto.error_reply(exc)``; close unless the error is a
        non-fatal ``FrameError``.
        """
        reply = self.proto.error_reply(exc)
        if reply:
            self.conn.write(reply)
        if getattr(exc, "fatal", True):
            self.conn.close()

    def payload_sink(self, size: int) -> PayloadSink | None:
        """Where the protocol's announced payload of ``size`` bytes is to be read.

        Default: one ``BodyBuffer`` of that size, handed to the protocol whole
        (the payload reaches the session as one ``bytes`` object, never
        copied). ``None``: feed it through the protocol's receive buffer.
        """
        return BodyBuffer(size, self.conn.buffer_cache)

    @property
    def hold_reading(self) -> bool:
        """True to stop reading from the peer (the session's consumer is behind).

        Call ``conn.update_flow()`` when it turns false again.
        """
        return False

    @property
    def busy(self) -> bool:
        """True while the session waits for something the engine does not track.

        A client waiting for replies is not idle: no idle timeout applies.
        """
        return False

    def closing(self) -> Awaitable[Any] | None:
        """Graceful shutdown began: requests in flight may finish, take no new ones.

        Return an awaitable to keep the connection open until it completes
        (work the engine does not see, such as a thread still handling what
        was received); it counts as in flight.
        """
        return None

    def abandoned(self) -> None:
        """The shutdown grace period ended with requests still in flight.

        Write the protocol's answer for them now (an error frame, an error
        reply): the connection closes right after. Default: nothing.
        """

    def closed(self, exc: BaseException | None) -> None:
        """The connection is gone (``exc`` is the OS error, if any)."""


class ConnectionCounter(Protocol):
    """What a server reports its connections to (``dataserve.ops.TransportMetrics``)."""

    def connection_opened(self) -> None: ...

    def connection_closed(self) -> None: ...


class Service(Protocol):
    """What a ``RawServer`` serves: a factory of sessions and a closing hook."""

    def session(self, conn: Connection) -> Session:
        """The ``Session`` for a new connection (cheap; called on every accept)."""
        ...

    async def aclose(self) -> None:
        """Called once after the server stopped and every connection closed."""
        ...


SessionFactory = Callable[["Connection"], Session]
