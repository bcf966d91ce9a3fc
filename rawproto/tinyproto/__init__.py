"""tinyproto's API (seed 004) on the rawproto engine, wire-compatible with tinyproto 2.x and 3.0.

::

    from rawproto.tinyproto import TinyProtoServer, TinyProtoConnection, TinyProtoClient

Subclass ``TinyProtoConnection`` and override its hooks (``pre_loop``,
``transmission_received``, ``loop_pass``, ``post_loop``); subclass
``TinyProtoServer`` (``pre_loop``, ``loop_pass``, ``post_loop``,
``conn_init``, ``conn_shutdown``) or use ``TinyProtoClient``, as with the
original. What differs is underneath: the sockets are served by one asyncio
engine (``rawproto.engine``) instead of a select loop per connection.

How the hooks run, and why it matches the original:

* Each connection's hooks run on that connection's own thread, one at a time,
  as in the original, so a hook may block, and ``transmit`` (blocking until
  the peer accepted the message and it was handed to the kernel) may be
  called from any hook. The thread starts after the handshake is under way
  and after the server's ``conn_init``.
* A message is handed to ``transmission_received`` as soon as it has
  arrived: the thread waits on a queue, it does not poll. ``loop_pass`` is
  called on a timer, every ``loop_pass_interval`` seconds (0.1 s, the
  original's select timeout).
* The server's hooks (``pre_loop``, ``loop_pass``, ``conn_init``,
  ``conn_shutdown``, ``post_loop``) run on the thread that called
  ``start()``. ``active_connections`` holds connection objects: iterate it,
  index it (``connect_to`` returns the index), take ``len`` of it; its
  ``items()``/``values()``/``keys()`` give the original's dictionary view by
  connection id. ``conn_init``/``conn_shutdown`` may take ``(conn_o)`` or
  ``(conn_id, conn_o)``.
* Setting ``shutdown = True`` on a connection closes it (after ``post_loop``);
  on a server, ends ``start()``; on a client, ends its ``start()`` loop.
* Ending ``start()`` (``shutdown``, or SIGTERM in the main thread) is
  graceful: the listeners close, each connection refuses messages announced
  from then on (0xfc: the sender's ``transmit`` raises ``TinyProtoError``),
  hands every message it had accepted to its hooks, lets them finish (their
  ``transmit`` calls too), runs ``post_loop`` and closes; connections still
  busy after ``limits.shutdown_timeout`` are closed.
* ``tls=TLSConfig(cert, key, client_ca)`` serves TLS; the client takes
  ``tls=True``, ``ca_file``, ``cert`` or ``verify=False``. The wire format
  has no token: a server bound beyond loopback without client certificates
  logs a warning (see ``docs/security.md``).
* Messages are ``bytearray`` as in the original, up to ``MSG_MAX_SIZE``
  (0xf0ffffff) by default; ``max_message_size`` lowers the limit, and a
  larger announced message is refused with 0xfc before any of it is read.
  A refused ``transmit`` raises ``TinyProtoError``; a closed connection makes
  ``transmit`` set ``shutdown`` instead, as the original does.
* ``connection_limit`` (``None``: unlimited, as in the original): a
  connection above it is answered 0xfe instead of the handshake and closed.
  The engine's own ``limits.max_connections`` applies as well.
* Unlike the original, ``add_addr`` accepts port 0 (a free port; the bound
  ones are in ``ports`` once ``pre_loop`` runs, and logged at INFO on the
  ``rawproto.tinyproto`` logger), IPv6 addresses, and a hook that raises is
  logged and closes its connection instead of leaving a dead thread behind.

Plugins (``TinyProtoPlugin``: ``msg_transmit``, ``msg_receive``) transform
each message on the way out (in registration order) and in (in reverse).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import ipaddress
import logging
import math
import queue
import signal
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from dataserve.core.errors import DataServeError, RemoteProtocolError
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.security import TLSConfig

from .._security import client_context, warn_if_exposed
from ..engine import Connection, RawServer, Session, bind_socket, open_connection
from ..engine.loop import LoopThread
from ..proto.base import Role
from ..proto.tinyproto import (
    MSG_MAX_SIZE,
    SC_CONFLICT,
    SC_CONLIMIT,
    SC_GENERIC_ERROR,
    SC_OK,
    SC_REFUSED,
    Accept,
    Accepted,
    Announce,
    Handshake,
    Message,
    Refuse,
    Refused,
)
from ..proto.tinyproto import TinyProtoConnection as _Protocol

__all__ = [
    "MSG_MAX_SIZE",
    "SC_CONFLICT",
    "SC_CONLIMIT",
    "SC_GENERIC_ERROR",
    "SC_OK",
    "SC_REFUSED",
    "TinyProtoClient",
    "TinyProtoConnection",
    "TinyProtoConnectionDetails",
    "TinyProtoError",
    "TinyProtoPlugin",
    "TinyProtoServer",
]

logger = logging.getLogger("rawproto.tinyproto")

# The original has no idle timeout: a tinyproto connection may stay quiet forever.
TINYPROTO_LIMITS = DEFAULT_LIMITS.replace(idle_timeout=math.inf, max_frame_size=MSG_MAX_SIZE)
# Messages received but not yet handed to the hooks: above either mark the
# engine stops reading from the peer until the connection's thread catches up.
_QUEUED_BYTES_HIGH = 64 * 1024 * 1024
_QUEUED_MESSAGES_HIGH = 1024
# How long a closing connection's thread waits for the socket to close.
_CLOSE_WAIT = 5.0


class TinyProtoError(DataServeError):
    """A tinyproto exchange failed: a refused message or connection, a bad handshake."""


class TinyProtoPlugin:
    """Transforms every message: ``msg_transmit`` on the way out, ``msg_receive`` in."""

    def msg_transmit(self, msg: Any) -> Any:
        return msg

    def msg_receive(self, msg: Any) -> Any:
        return msg


def _plugin(plugin: Any) -> TinyProtoPlugin:
    """A plugin instance from a ``TinyProtoPlugin`` subclass or instance."""
    if inspect.isclass(plugin) and issubclass(plugin, TinyProtoPlugin):
        return plugin()
    if isinstance(plugin, TinyProtoPlugin):
        return plugin
    raise ValueError("Not a subclass of TinyProtoPlugin")


class TinyProtoConnectionDetails:
    """tinyproto 3.0's ``(host, port)`` holder, accepted wherever an address is."""

    __slots__ = ("host", "port")

    def __init__(self, host: str, port: int) -> None:
        _check_port(port)
        self.host = host
        self.port = int(port)

    @property
    def socket_connect_details(self) -> tuple[str, int]:
        return self.host, self.port


def _check_port(port: Any) -> int:
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError("Port number should be between 1 and 65535 (or 0 for any free port)")
    return number


# --- the connection object users subclass ------------------------------------

_READY = "ready"
_CLOSED = "closed"
_WAKE = "wake"
# The server is shutting down and every message accepted is in the inbox.
_DRAIN = "drain"


class TinyProtoConnection:
    """One tinyproto connection; subclass it and override the hooks.

    Hooks: ``pre_loop()`` once after the handshake, ``transmission_received(msg)``
    for each message, ``loop_pass()`` every ``loop_pass_interval`` seconds,
    ``post_loop()`` once at the end. Methods: ``transmit(msg)``,
    ``receive()``, ``register_plugin(plugin)``, ``is_alive()``, ``join()``.
    Attributes: ``shutdown`` (set it to close), ``socket_o`` (``getpeername()``
    etc.), ``peername_details``, ``plugin_list``, ``connection_lock``.
    """

    #: Seconds between ``loop_pass`` calls.
    loop_pass_interval: ClassVar[float] = 0.1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # tinyproto 3.0 passes (socket_object, socket_already_up, remote_details,
        # connection_plugin_list); the socket is the engine's here, so only the
        # plugins are taken from those arguments.
        plugins = kwargs.get("connection_plugin_list", args[3] if len(args) > 3 else ())
        self._shutdown = False
        self._peer_gone = False
        self._closed_seen = False  # the close marker was taken from the inbox
        self.socket_o: Any = None
        self.is_socket_up = False
        self.remote_details: Any = kwargs.get("remote_details")
        self.plugin_list: list[TinyProtoPlugin] = []
        self.connection_lock = threading.RLock()
        self.peername_details: Any = None
        self.connection_id = uuid.uuid4()
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._session: _TinySession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._daemon = True
        self._on_exit: Callable[[TinyProtoConnection], None] | None = None
        for plugin in plugins or ():
            self.register_plugin(plugin)

    # --- hooks -----------------------------------------------------------------

    def pre_loop(self) -> None:
        pass

    def post_loop(self) -> None:
        pass

    def loop_pass(self) -> None:
        pass

    def transmission_received(self, msg: bytearray) -> None:
        pass

    # --- methods ---------------------------------------------------------------

    @property
    def shutdown(self) -> bool:
        """Set to ``True`` to close the connection (``post_loop`` runs first)."""
        return self._shutdown

    @shutdown.setter
    def shutdown(self, value: bool) -> None:
        self._shutdown = bool(value)
        if value:
            self._inbox.put((_WAKE, None))  # the thread notices at once

    def register_plugin(self, plugin: Any) -> None:
        self.plugin_list.append(_plugin(plugin))

    def transmit(self, msg: bytes | bytearray | memoryview) -> None:
        """Send one message; returns once the peer accepted it and it is on its way.

        Raises ``TinyProtoError`` if the peer refuses it (too large). On a
        closed connection sets ``shutdown`` and returns, as the original does.
        """
        with self.connection_lock:
            for plugin in self.plugin_list:
                msg = plugin.msg_transmit(msg)
            if isinstance(msg, str) or not isinstance(msg, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"transmit takes bytes, not {type(msg).__name__} (encode text first)"
                )
            if len(msg) > MSG_MAX_SIZE:
                raise TinyProtoError(
                    f"a tinyproto message is at most {MSG_MAX_SIZE} bytes, not {len(msg)}"
                )
            session, loop = self._session, self._loop
            if session is None or loop is None or session.conn.is_closed:
                self._lost()
                return
            if LoopThread.shared().in_loop_thread:
                raise RuntimeError("transmit blocks: call it from a hook, not from the event loop")
            waiter = _Waiter()
            try:
                loop.call_soon_threadsafe(session.transmit, bytes(msg), waiter)
            except RuntimeError:  # the loop is closed: so is the connection
                self._lost()
                return
            try:
                waiter.wait()
            except _Refused as exc:
                raise TinyProtoError(f"Transmission rejected: {exc}") from None
            except (ConnectionError, OSError, asyncio.CancelledError):
                self._lost()

    def receive(self) -> bytearray:
        """Wait for the next message and return it (instead of ``transmission_received``).

        Returns an empty ``bytearray`` and sets ``shutdown`` once the connection
        is closed, as the original does.
        """
        while True:
            try:
                kind, value = self._inbox.get(block=not self._closed_seen)
            except queue.Empty:
                return bytearray()  # closed, and every message taken
            if kind == "msg":
                return self._received(value)
            if kind == _CLOSED:
                self._closed_seen = True
                self._lost()
                return bytearray()
            if kind == _DRAIN:
                self._shutdown = True
                return bytearray()
            if kind == _WAKE and self._shutdown:
                return bytearray()

    def _lost(self) -> None:
        """The peer is gone: ``shutdown`` becomes true, as in the original.

        Messages that arrived before it went are still handed to the hooks:
        they were accepted, so they are not dropped.
        """
        self._peer_gone = True
        self._shutdown = True

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # --- internals -------------------------------------------------------------

    def _attach(self, session: _TinySession) -> None:
        self._session = session
        self._loop = session.conn.loop
        self.socket_o = _SocketView(session.conn)
        self.is_socket_up = True

    def _start(self, on_exit: Callable[[TinyProtoConnection], None] | None, daemon: bool) -> None:
        self._on_exit = on_exit
        self._thread = threading.Thread(
            target=self._run, name=f"tinyproto-{self.connection_id}", daemon=daemon
        )
        self._thread.start()

    def _received(self, data: bytearray) -> bytearray:
        session, loop = self._session, self._loop
        if session is not None and loop is not None:
            # Counted here, on this thread (the only one writing these); the
            # loop is woken only if it stopped reading for this connection.
            session.taken_bytes += len(data)
            session.taken_messages += 1
            if session.holding:
                with contextlib.suppress(RuntimeError):  # the loop is gone at exit
                    loop.call_soon_threadsafe(session.conn.update_flow)
        for plugin in reversed(self.plugin_list):
            data = plugin.msg_receive(data)
        return data

    def _run(self) -> None:
        try:
            if self._wait_ready():
                self._loop_thread()
        finally:
            self._drained()
            self._close_socket()
            if self._on_exit is not None:
                self._on_exit(self)

    def _drained(self) -> None:
        """Tell a shutting-down server this connection's hooks are done."""
        session, loop = self._session, self._loop
        if session is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone at exit
                loop.call_soon_threadsafe(session.hooks_done)

    def _wait_ready(self) -> bool:
        while True:
            kind, _ = self._inbox.get()
            if kind == _READY:
                self.peername_details = self.socket_o.getpeername()
                return True
            if kind in (_CLOSED, _DRAIN):
                self._closed_seen = kind == _CLOSED
                return False
            if kind == _WAKE and self._shutdown:
                return False

    def _loop_thread(self) -> None:
        if not self._hook(self.pre_loop):
            return
        interval = self.loop_pass_interval
        next_pass = time.monotonic() + interval
        # Until shutdown; but when the peer went away, first every message it
        # sent before (the queue ends with the close).
        while not self._shutdown or (self._peer_gone and not self._closed_seen):
            try:
                kind, value = self._inbox.get(timeout=max(0.0, next_pass - time.monotonic()))
            except queue.Empty:
                kind, value = "", None
            if kind == "msg":
                if not self._hook(self.transmission_received, self._received(value)):
                    return
            elif kind == _CLOSED:
                self._closed_seen = True
                self._lost()  # as the original notices a dropped connection
            elif kind == _DRAIN:
                break  # the server stops: every message accepted was handled
            if time.monotonic() >= next_pass and not self._shutdown:
                if not self._hook(self.loop_pass):
                    return
                next_pass = time.monotonic() + interval
        self._hook(self.post_loop)

    def _hook(self, fn: Callable[..., Any], *args: Any) -> bool:
        try:
            fn(*args)
        except Exception:
            logger.exception(
                "%s.%s raised; closing the connection", type(self).__name__, fn.__name__
            )
            self._shutdown = True
            return False
        return True

    def _close_socket(self) -> None:
        self.is_socket_up = False
        session, loop = self._session, self._loop
        if session is None or loop is None:
            return
        conn = session.conn

        async def close() -> None:
            conn.close()
            await asyncio.wait_for(asyncio.shield(conn.closed_future), _CLOSE_WAIT)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), loop).result(_CLOSE_WAIT + 1)


class _SocketView:
    """``socket_o``: the connection's socket, whose addresses outlive it.

    ``getpeername()``/``getsockname()`` answer from the addresses taken when
    the connection opened, so a hook asking after the peer has gone (the
    seed's ``conn_init`` does) still gets them; anything else is the
    transport's socket's.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def getpeername(self) -> Any:
        return self._conn.peername

    def getsockname(self) -> Any:
        return self._conn.sockname

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn.socket, name)


# --- the engine side ---------------------------------------------------------


class _Refused(Exception):
    """The peer refused one of our messages."""


class _Waiter:
    """A ``transmit`` call waiting on its thread for the loop to send its message.

    The loop side calls ``done``/``set_result``/``set_exception`` (as on a
    future); the hook's thread blocks in ``wait``: one lock, no task, no
    future chained across threads.
    """

    __slots__ = ("_exc", "_finished", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._exc: BaseException | None = None
        self._finished = False

    def done(self) -> bool:
        return self._finished

    def set_result(self, _: None) -> None:
        if not self._finished:
            self._finished = True
            self._lock.release()

    def set_exception(self, exc: BaseException) -> None:
        if not self._finished:
            self._exc = exc
            self._finished = True
            self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()
        if self._exc is not None:
            raise self._exc


class _TinySession(Session):
    """Runs on the engine's loop: moves messages between the wire and a connection's thread."""

    concurrent = True

    def __init__(
        self,
        conn: Connection,
        owner: TinyProtoConnection,
        max_message_size: int,
        admit: Callable[[_TinySession], bool] | None = None,
    ) -> None:
        super().__init__(conn, _Protocol(Role.SERVER, max_message_size=max_message_size))
        self.tiny: _Protocol = self.proto  # type: ignore[assignment]
        self.owner = owner
        self.outgoing: collections.deque[tuple[bytes, _Waiter]] = collections.deque()
        self.sending: tuple[bytes, _Waiter] | None = None
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
                future.set_exception(_Refused(f"the peer refused it ({event.reason})"))
        elif type(event) is Handshake:
            if not self.ready.done():
                self.ready.set_result(None)
            self.owner._inbox.put((_READY, None))
        self._next_message()

    async def _sent(self, future: _Waiter) -> None:
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

    def transmit(self, data: bytes, waiter: _Waiter) -> None:
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
        if self._hooks_finished or self.owner._thread is None:
            return None  # no thread (any more) to wait for
        self._draining = self.conn.loop.create_future()
        self._post_drain()
        return self._draining

    def _post_drain(self) -> None:
        # After the last message accepted (none may be on its way), the
        # thread finds the drain marker and ends.
        if self._draining is not None and not self._drain_posted and not self.tiny.announced:
            self._drain_posted = True
            self.owner._inbox.put((_DRAIN, None))

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
        self.owner._inbox.put((_CLOSED, None))


# --- active connections ------------------------------------------------------


class _ActiveConnections(list[Any]):
    """Connection objects: iterate, index, ``len``; ``items()`` etc. by connection id."""

    def items(self) -> Iterator[tuple[uuid.UUID, Any]]:
        return ((c.connection_id, c) for c in list(self))

    def keys(self) -> Iterator[uuid.UUID]:
        return (c.connection_id for c in list(self))

    def values(self) -> Iterator[Any]:
        return iter(list(self))

    def get(self, connection_id: uuid.UUID, default: Any = None) -> Any:
        for c in list(self):
            if c.connection_id == connection_id:
                return c
        return default


def _call_conn_hook(hook: Callable[..., Any], conn: TinyProtoConnection) -> None:
    """``hook(conn_o)`` or the original's ``hook(conn_id, conn_o)``."""
    try:
        params = inspect.signature(hook).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_two = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):
        takes_two = True
    if takes_two:
        hook(conn.connection_id, conn)
    else:
        hook(conn)


class _Base:
    """What the server and the client share: handler, plugins, shutdown, the hook loop."""

    loop_pass_interval: ClassVar[float] = 0.1
    #: Largest message accepted from a peer (refused with 0xfc above it).
    max_message_size: int = MSG_MAX_SIZE

    def __init__(
        self,
        connection_handler: type[TinyProtoConnection] = TinyProtoConnection,
        connection_plugin_list: Iterable[Any] = (),
    ) -> None:
        self._shutdown = False
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.active_connections: _ActiveConnections = _ActiveConnections()
        self.connection_handler: type[TinyProtoConnection] = TinyProtoConnection
        self.set_conn_handler(connection_handler)
        self.connection_plugin_list: list[TinyProtoPlugin] = []
        for plugin in connection_plugin_list:
            self.register_connection_plugin(plugin)
        self.limits: Limits = TINYPROTO_LIMITS

    @property
    def shutdown(self) -> bool:
        """Set to ``True`` to end ``start()``."""
        return self._shutdown

    @shutdown.setter
    def shutdown(self, value: bool) -> None:
        self._shutdown = bool(value)
        if value:
            self._events.put((_WAKE, None))

    def set_conn_handler(self, handler: Any) -> None:
        if not (inspect.isclass(handler) and issubclass(handler, TinyProtoConnection)):
            raise ValueError("Connection handler must be a subclass of TinyProtoConnection")
        self.connection_handler = handler

    def register_connection_plugin(self, plugin: Any) -> None:
        self.connection_plugin_list.append(_plugin(plugin))

    def _new_connection(self) -> TinyProtoConnection:
        conn_o = self.connection_handler()
        for plugin in self.connection_plugin_list:
            conn_o.plugin_list.append(plugin)
        return conn_o

    def _limits(self) -> Limits:
        return self.limits.replace(max_frame_size=min(self.max_message_size, MSG_MAX_SIZE))

    def _main_loop(self, on_event: Callable[[str, Any], None]) -> None:
        """Call ``loop_pass`` every interval and ``on_event`` as events arrive, until shutdown."""
        next_pass = time.monotonic() + self.loop_pass_interval
        while not self._shutdown:
            try:
                kind, value = self._events.get(timeout=max(0.0, next_pass - time.monotonic()))
            except queue.Empty:
                kind, value = "", None
            if kind and kind != _WAKE:
                on_event(kind, value)
            if time.monotonic() >= next_pass and not self._shutdown:
                self.loop_pass()
                next_pass = time.monotonic() + self.loop_pass_interval

    def _shutdown_active_cons(self) -> None:
        for conn_o in list(self.active_connections):
            conn_o.shutdown = True

    def pre_loop(self) -> None:
        pass

    def post_loop(self) -> None:
        pass

    def loop_pass(self) -> None:
        pass


class _Service:
    """The engine ``Service`` of a ``TinyProtoServer``."""

    def __init__(self, owner: TinyProtoServer, limits: Limits) -> None:
        self.owner = owner
        self.limits = limits
        self.open = 0

    def session(self, conn: Connection) -> _TinySession:
        conn_o = self.owner._new_connection()
        return _TinySession(conn, conn_o, self.limits.max_frame_size, self._admit)

    def _admit(self, session: _TinySession) -> bool:
        limit = self.owner.connection_limit
        if limit is not None and self.open >= limit:
            return False
        self.open += 1
        session.conn.closed_future.add_done_callback(self._closed)
        self.owner._events.put(("init", session.owner))
        return True

    def _closed(self, _: asyncio.Future[None]) -> None:
        self.open -= 1

    async def aclose(self) -> None:
        pass


class TinyProtoServer(_Base):
    """tinyproto's server: ``add_addr(host, port)``, ``set_conn_handler(cls)``, ``start()``.

    ``TinyProtoServer()`` as in 2.x, or tinyproto 3.0's
    ``TinyProtoServer(listen_addresses, connection_handler, connection_limit,
    connection_plugin_list)``. ``start()`` blocks until ``shutdown`` is set
    (or SIGTERM arrives), then stops gracefully. ``tls`` serves TLS on every
    address.
    """

    def __init__(
        self,
        listen_addresses: Iterable[Any] | None = None,
        connection_handler: type[TinyProtoConnection] = TinyProtoConnection,
        connection_limit: int | None = None,
        connection_plugin_list: Iterable[Any] = (),
        *,
        tls: TLSConfig | None = None,
    ) -> None:
        super().__init__(connection_handler, connection_plugin_list)
        self.listen_addrs: list[tuple[str, int]] = []
        for details in listen_addresses or ():
            self.add_addr(details.host, details.port)
        self.listen_socks: list[Any] = []
        self.connection_limit: int | None = connection_limit
        self.tls = tls
        self._servers: list[RawServer] = []

    @property
    def ports(self) -> list[int]:
        """The bound ports, in ``add_addr`` order (known once ``pre_loop`` runs)."""
        return [s.getsockname()[1] for s in self.listen_socks]

    def add_addr(self, ipaddr: str, port: int) -> None:
        port = _check_port(port)
        try:
            ipaddress.ip_address(ipaddr)
        except ValueError:
            raise ValueError("Incorrect ip address") from None
        self.listen_addrs.append((ipaddr, port))

    def start(self) -> None:
        """Listen, run the hooks until ``shutdown`` (or SIGTERM), then stop gracefully."""
        if self.listen_socks:
            raise TinyProtoError("There are already active listeners")
        if not self.listen_addrs:
            raise TinyProtoError("No addresses defined for listening")
        loop = LoopThread.shared()
        limits = self._limits()
        service = _Service(self, limits)
        restore = self._stop_on_sigterm()
        try:
            for host, port in self.listen_addrs:
                warn_if_exposed("tinyproto", host, self.tls, logger)
                self.listen_socks.append(bind_socket(host, port))
            for sock, (host, _) in zip(self.listen_socks, self.listen_addrs, strict=True):
                server = RawServer(service, host=host, limits=limits, sock=sock, tls=self.tls)
                self._servers.append(loop.run(server.start(), timeout=30))
                logger.info("tinyproto server listening on %s:%d", host, server.port)
            self.pre_loop()
            self._main_loop(self._on_event)
            self.post_loop()
        finally:
            # Graceful first: each connection handles what it accepted and
            # closes; then whatever is left is told to stop.
            self._stop_servers(loop)
            self._shutdown_active_cons()
            restore()

    def _stop_on_sigterm(self) -> Callable[[], None]:
        """SIGTERM ends ``start()`` gracefully (main thread only); returns the undo."""
        if threading.current_thread() is not threading.main_thread():
            return _nothing
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._terminate())

        def restore() -> None:
            signal.signal(signal.SIGTERM, previous)

        return restore

    def _terminate(self) -> None:
        self.shutdown = True

    def _on_event(self, kind: str, conn_o: TinyProtoConnection) -> None:
        if kind == "init":
            _call_conn_hook(self.conn_init, conn_o)
            self.active_connections.append(conn_o)
            conn_o._start(self._thread_ended, daemon=True)
        elif kind == "ended":
            # One more pass while the connection is still listed, so the server
            # sees the last state its hooks left (the seed's SRVQUIT flag).
            self.loop_pass()
            with contextlib.suppress(ValueError):
                self.active_connections.remove(conn_o)
            _call_conn_hook(self.conn_shutdown, conn_o)

    def _thread_ended(self, conn_o: TinyProtoConnection) -> None:
        self._events.put(("ended", conn_o))

    def _stop_servers(self, loop: LoopThread) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            with contextlib.suppress(Exception):
                loop.run(server.stop(self.limits.shutdown_timeout), timeout=None)
        socks, self.listen_socks = self.listen_socks, []
        for sock in socks:
            sock.close()

    def conn_init(self, conn_id: Any, conn_o: Any = None) -> None:
        pass

    def conn_shutdown(self, conn_id: Any, conn_o: Any = None) -> None:
        pass


class TinyProtoClient(_Base):
    """tinyproto's client: ``connect_to(host, port)`` returns an index into ``active_connections``.

    ``start()`` (optional, as in the original) runs ``pre_loop``,
    ``loop_pass`` every ``loop_pass_interval`` until ``shutdown``, then
    ``post_loop`` and closes the connections. TLS when ``tls=True`` or any of
    ``ca_file``, ``cert``, ``verify=False`` is given (the server is verified
    unless ``verify=False``).
    """

    def __init__(
        self,
        connection_handler: type[TinyProtoConnection] = TinyProtoConnection,
        connection_plugin_list: Iterable[Any] = (),
        timeout: float = 5,
        *,
        tls: bool | ssl.SSLContext = False,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(connection_handler, connection_plugin_list)
        self.socket_timeout: float = timeout
        self.ssl_context = client_context(tls, verify=verify, ca_file=ca_file, cert=cert)

    def set_timeout(self, t: float) -> None:
        """Seconds allowed to connect and complete the handshake."""
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            raise ValueError("Timeout value must be a positive number")
        self.socket_timeout = t

    def connect_to(self, host: Any, port: int | None = None) -> int:
        """Connect and complete the handshake; return the index in ``active_connections``.

        ``host`` may be a ``TinyProtoConnectionDetails`` (tinyproto 3.0).
        Raises ``TinyProtoError`` if the connection fails or is refused.
        """
        if port is None:
            host, port = host.host, host.port
        port = _check_port(port)
        conn_o = self._new_connection()
        conn_o.remote_details = (host, port)
        limits = self._limits()
        max_size = limits.max_frame_size

        async def connect() -> None:
            conn = await open_connection(
                lambda c: _TinySession(c, conn_o, max_size),
                host,
                port,
                limits=limits,
                timeout=self.socket_timeout,
                ssl_context=self.ssl_context,
            )
            assert isinstance(conn.session, _TinySession)
            try:
                await asyncio.wait_for(asyncio.shield(conn.session.ready), self.socket_timeout)
            except BaseException:
                conn.abort()
                raise

        try:
            LoopThread.shared().run(connect(), timeout=self.socket_timeout + 5)
        except TinyProtoError as exc:
            raise TinyProtoError(f"Initialisation error with {host}:{port}: {exc}") from None
        except (OSError, asyncio.TimeoutError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
            raise TinyProtoError(f"cannot connect to {host}:{port}: {reason}") from exc
        # Client connections' threads are not daemons (as in tinyproto 2.x): the
        # program waits for them, so post_loop runs and the socket closes cleanly.
        conn_o._start(None, daemon=False)
        self.active_connections.append(conn_o)
        return len(self.active_connections) - 1

    def start(self) -> None:
        self.pre_loop()
        self._main_loop(lambda kind, value: None)
        self.post_loop()
        self._shutdown_active_cons()


def _nothing() -> None:
    return None
