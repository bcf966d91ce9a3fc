"""tcpy's API (seed 002) on rawproto: ``TCPServer``, ``TCPHandler``, ``TCPClient``.

::

    from rawproto.tcpy import TCPServer, TCPHandler, TCPClient

    class AdditionHandler(TCPHandler):
        def __init__(self, x, y):
            self.x = x
            self.y = y

        def execute(self):
            return self.success(solution=self.x + self.y)

    server = TCPServer()
    server.commands = {"add": AdditionHandler}
    server.listen()

    print(TCPClient().execute(cmd="add", x=1, y=2))   # {'success': True, 'solution': 3}

The wire is tcpy's, byte for byte (``rawproto.proto.tcpy``), so clients and
servers of the original interoperate with these. Beyond the original:

* one connection carries any number of requests (the original client's
  one-connection-per-request works too);
* an unknown command, missing or unexpected parameters and a raising handler
  get ``{"error": True, "message": ...}`` replies that say what was wrong,
  and the connection stays usable; a message that is not msgpack, or a
  request that is not a map, gets an error reply and the connection closes;
* every limit of ``dataserve.core.limits.Limits`` applies (frame size,
  msgpack container length and nesting, timeouts, connection count); a
  handler that takes longer than ``handler_timeout`` gets the reply
  ``{"error": True, "message": "command 'x' did not answer within N s"}``
  (its thread runs on; its ``send``/``recv`` raise ``ConnectionClosed``);
* ``listen()`` stops cleanly on Ctrl-C or SIGTERM, letting running handlers
  finish; one still running when ``shutdown_timeout`` ends gets an error
  reply saying the server shut down;
* ``tls=TLSConfig(...)`` serves TLS, and the client takes ``tls=True``,
  ``ca_file``, ``cert`` or ``verify=False``. tcpy's wire has no token: a
  server bound beyond loopback without client certificates logs a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

from dataserve.core import errors
from dataserve.core.dispatch import Dispatcher
from dataserve.core.errors import LocalProtocolError, RemoteProtocolError
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.routing import Router
from dataserve.core.security import TLSConfig

from .._blocking import connect, translate_errors
from .._security import client_context
from ..engine import Connection as EngineConnection
from ..engine import Session
from ..engine.running import FacadeServer
from ..proto import tcpy as proto
from ..proto.tcpy import DEFAULT_PORT

__all__ = ["DEFAULT_PORT", "TCPClient", "TCPHandler", "TCPServer"]

logger = logging.getLogger("rawproto.tcpy")

_READ_SIZE = 256 * 1024
_WHAT = "tcpy server"


# --- the handler base class ------------------------------------------------------------


class _Channel:
    """How a running handler talks to its client (the server sets one per request)."""

    def send(self, data: Any) -> None:
        raise RuntimeError("this handler is not running on a TCPServer connection")

    def recv(self) -> Any:
        raise RuntimeError("this handler is not running on a TCPServer connection")

    def close(self) -> None:
        """The exchange is over: no more ``send``/``recv``."""


_UNCONNECTED = _Channel()


class TCPHandler:
    """Base class of tcpy handlers: subclass it and define ``execute()``.

    The request's parameters are passed to ``__init__`` as keyword
    arguments; ``execute()`` runs on one of the server's handler threads and
    returns the reply, usually ``self.success(...)`` or ``self.error(...)``.
    During ``execute()``, ``send(data)`` and ``recv()`` converse with the
    client on the same connection. Calling ``super().__init__()`` is
    optional: the server connects every handler it makes.
    """

    _channel: _Channel = _UNCONNECTED

    def __init__(self, **params: Any) -> None:
        self.params = params

    def execute(self) -> dict[str, Any]:
        """Carry out the command and return the reply map."""
        raise TypeError(f"{type(self).__name__} must define execute()")

    def success(self, **kwargs: Any) -> dict[str, Any]:
        """``{"success": True, **kwargs}``."""
        return {"success": True, **kwargs}

    def error(self, message: str, **kwargs: Any) -> dict[str, Any]:
        """``{"error": True, "message": message, **kwargs}``."""
        return {"error": True, "message": message, **kwargs}

    def send(self, data: Any) -> None:
        """Send ``data`` (a dict) to the client now, before the reply."""
        self._channel.send(data)

    def recv(self) -> Any:
        """Wait for the client's next message and return it.

        Raises ``dataserve.core.errors.TimeoutError`` if the client sends
        nothing for ``Limits.idle_timeout`` seconds and ``ConnectionClosed``
        if it goes away.
        """
        return self._channel.recv()


# --- the server ------------------------------------------------------------------------


def _parameter_problem(command: str, target: Any, params: dict[str, Any]) -> str | None:
    """Why ``target(**params)`` cannot be called, named for the client, or ``None``."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: just call it
        return None
    kinds = inspect.Parameter
    named = {
        p.name: p
        for p in signature.parameters.values()
        if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
    }
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.kind is not kinds.VAR_POSITIONAL
        and p.kind is not kinds.VAR_KEYWORD
        and p.default is p.empty
        and p.name not in params
    ]
    takes_any = any(p.kind is kinds.VAR_KEYWORD for p in signature.parameters.values())
    unexpected = [] if takes_any else [name for name in params if name not in named]
    problems = []
    if missing:
        problems.append(f"missing parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if unexpected:
        problems.append(
            f"unexpected parameter{'s' if len(unexpected) > 1 else ''} {', '.join(unexpected)}"
        )
    return f"command {command!r}: {'; '.join(problems)}" if problems else None


def _run_handler(target: Any, params: dict[str, Any], channel: _Channel) -> Any:
    """On a handler thread: make the handler, connect it, run ``execute()``."""
    handler = target(**params)
    execute = getattr(handler, "execute", None)
    if not callable(execute):
        return handler  # a plain callable's return value is the reply
    with contextlib.suppress(AttributeError):  # a class with __slots__ cannot converse
        handler._channel = channel
    return execute()


class _Service:
    """The engine service for one ``TCPServer``: commands, handler threads, limits."""

    def __init__(self, commands: dict[str, Any], limits: Limits) -> None:
        self.router: Router[Any] = Router(commands)
        self.limits = limits
        self.dispatcher = Dispatcher(limits.handler_threads, name="tcpy-handler")
        self.run = self.dispatcher.prepare(_run_handler)

    def session(self, conn: EngineConnection) -> _Session:
        return _Session(conn, self)

    async def aclose(self) -> None:
        self.dispatcher.close()

    async def answer(self, request: proto.Request, channel: _Channel) -> dict[str, Any]:
        """The reply map for ``request``: the handler's, or tcpy's error map."""
        match = self.router.match(request.command)
        if match is None:
            known = ", ".join(sorted(self.router)[:20]) or "none"
            return {
                "error": True,
                "message": f"unknown command {request.command!r} (this server has: {known})",
            }
        problem = _parameter_problem(request.command, match.endpoint, request.params)
        if problem is not None:
            return {"error": True, "message": problem}
        timeout = self.limits.handler_timeout
        try:
            reply = await asyncio.wait_for(
                self.run(match.endpoint, request.params, channel), timeout
            )
        except asyncio.TimeoutError:
            # The thread cannot be stopped: it runs on, its reply is dropped,
            # and its conversation with the client is over.
            channel.close()
            logger.error("command %r did not answer within %g s", request.command, timeout)
            return {
                "error": True,
                "message": f"command {request.command!r} did not answer within {timeout:g} s",
            }
        except Exception as exc:
            logger.info("command %r raised %r", request.command, exc, exc_info=exc)
            return proto.error_map(exc)
        if not isinstance(reply, dict):
            return {
                "error": True,
                "message": f"command {request.command!r} returned a "
                f"{type(reply).__name__}, not a dict (return self.success(...))",
            }
        return reply


class _SessionChannel(_Channel):
    """A handler thread's way to a session on the event loop."""

    def __init__(self, session: _Session) -> None:
        self._session = session
        self._loop = asyncio.get_running_loop()
        self._closed = False

    def close(self) -> None:
        """The exchange is over (answered already): the handler may not converse."""
        self._closed = True
        self._session.end_conversation()

    def send(self, data: Any) -> None:
        self._check()
        self._call(self._session.send_message(data))

    def recv(self) -> Any:
        self._check()
        return self._call(self._session.receive_message())

    def _check(self) -> None:
        if self._closed:
            raise errors.ConnectionClosed(
                "this command was already answered (it took longer than handler_timeout)"
            )

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a handler thread: the usual case
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError("send() and recv() block: call them from a def execute()")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


class _Session(Session):
    """One tcpy connection on the engine.

    Requests are answered in order, one at a time, but frames that arrive
    while a handler runs are left in the protocol's buffer until the handler
    asks for one (``recv()``) or has replied: only then is it known whether a
    frame is a message of the conversation or the next request. ``concurrent``
    is therefore true (the engine keeps reading) and ``poll`` holds events
    back itself; past ``_HOLD_BYTES`` of held-back input, reading pauses.
    """

    concurrent = True
    _HOLD_BYTES = 256 * 1024

    def __init__(self, conn: EngineConnection, service: _Service) -> None:
        self.tcpy = proto.Connection(proto.Role.SERVER, service.limits)
        super().__init__(conn, self.tcpy)
        self.service = service
        self._waiter: asyncio.Future[Any] | None = None
        self._held = False

    def poll(self) -> object | None:
        tcpy = self.tcpy
        if tcpy.busy and self._waiter is None:
            if tcpy.buffered > self._HOLD_BYTES:
                self._hold(True)
            return None
        try:
            event = tcpy.next_event()
        except RemoteProtocolError as exc:
            self._wake(exc)
            raise
        if event is proto.NEED_DATA:
            return None
        if self._waiter is not None:
            if isinstance(event, proto.Message):
                self._wake(None, event.data)
            else:
                self._wake(errors.ConnectionClosed("the client closed the connection"))
            return None
        return event

    def handle(self, event: object) -> Awaitable[Any] | None:
        if isinstance(event, proto.Request):
            return self._serve(event)
        return None

    def closed(self, exc: BaseException | None) -> None:
        self._wake(errors.ConnectionClosed("the client closed the connection"))

    def end_conversation(self) -> None:
        """A timed-out handler waiting in ``recv()`` is woken with an error."""
        self._wake(errors.ConnectionClosed("this command was already answered"))

    def abandoned(self) -> None:
        if self.tcpy.busy and not self.conn.is_closed:
            self.conn.send(
                proto.Reply(
                    {
                        "error": True,
                        "message": "the server shut down before the command finished",
                    }
                )
            )

    async def _serve(self, request: proto.Request) -> None:
        try:
            reply = await self.service.answer(request, _SessionChannel(self))
            if self.conn.is_closed or self.tcpy.must_close:
                return  # the conversation broke the protocol: already answered
            try:
                self.conn.send(proto.Reply(reply))
            except LocalProtocolError as exc:  # a reply msgpack cannot carry
                self.conn.send(proto.Reply(proto.error_map(exc)))
        finally:
            self._hold(False)

    # --- the conversation, on the loop thread ---------------------------------------

    async def send_message(self, data: Any) -> None:
        if self.conn.is_closed:
            raise errors.ConnectionClosed("the client closed the connection")
        self.conn.send(proto.Message(data))
        try:
            await self.conn.drain()
        except ConnectionError:
            raise errors.ConnectionClosed("the client closed the connection") from None

    async def receive_message(self) -> Any:
        if self.conn.is_closed:
            raise errors.ConnectionClosed("the client closed the connection")
        waiter = self._waiter = self.conn.loop.create_future()
        self._hold(False)
        try:
            self.poll()  # a message may already be buffered
            timeout = self.service.limits.idle_timeout
            try:
                return await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                raise errors.TimeoutError(
                    f"the client sent no message within {timeout:g} s"
                ) from None
        except RemoteProtocolError as exc:
            self.conn.fail(exc)
            raise
        finally:
            self._waiter = None

    def _wake(self, exc: BaseException | None, data: Any = None) -> None:
        """Complete the waiting ``recv()`` with a message's data or an exception."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(data)

    def _hold(self, hold: bool) -> None:
        if hold is self._held or self.conn.transport is None:
            return
        self._held = hold
        with contextlib.suppress(RuntimeError):
            if hold:
                self.conn.transport.pause_reading()
            else:
                self.conn.transport.resume_reading()


class TCPServer(FacadeServer):
    """A tcpy server: ``commands`` maps command names to handler classes.

    ``listen()`` serves in the foreground until Ctrl-C or SIGTERM (handlers
    that are running finish first); ``start()``/``stop()`` run it in the
    background instead. ``threads`` is how many handlers run at once.
    ``poll_intv`` is accepted for compatibility: nothing here polls.
    ``limits`` sets every other limit and timeout, ``tls`` serves TLS. The
    default host, ``localhost``, serves this machine only; any other logs a
    warning unless ``tls`` requires client certificates (tcpy has no token).
    """

    FRAMING = "tcpy"

    def __init__(
        self,
        host: str = "localhost",
        port: int = DEFAULT_PORT,
        commands: dict[str, Any] | None = None,
        threads: int = 4,
        poll_intv: float = 0.1,
        *,
        limits: Limits | None = None,
        tls: TLSConfig | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.commands: dict[str, Any] = commands if commands is not None else {}
        self.threads = threads
        self.poll_intv = poll_intv
        self.limits = limits or DEFAULT_LIMITS
        self.tls = tls

    def _service(self) -> _Service:
        return _Service(self.commands, self.limits.replace(handler_threads=self.threads))

    def _address(self) -> tuple[str, int]:
        return self.host, self.port

    def _bound(self, port: int) -> None:
        self.port = port

    def listen(self) -> None:
        """Serve until Ctrl-C or SIGTERM; prints where it listens."""
        self._serve_until_signalled(lambda host, port: f"TCPServer is listening at {host}:{port}!")


# --- the client ----------------------------------------------------------------------


class TCPClient:
    """A blocking tcpy client.

    ``execute(cmd, **params)`` sends one request and returns the reply map;
    like the original it opens a connection for the request and closes it
    after, unless ``connect()`` was called first, in which case the open
    connection is used and stays open for more requests. ``send``/``recv``
    talk to a handler that converses. Error replies are returned as they
    are, as the original does; failing to get an answer raises a
    ``dataserve.core.errors.TransportError`` (``ConnectError``,
    ``TimeoutError``, ``ConnectionClosed``) and closes the connection.
    TLS when ``tls=True`` or any of ``ca_file``, ``cert``, ``verify=False``
    is given (the server is verified unless ``verify=False``).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = DEFAULT_PORT,
        *,
        timeout: float | None = 30.0,
        limits: Limits | None = None,
        tls: bool | ssl.SSLContext = False,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.timeout = timeout
        self.limits = limits or DEFAULT_LIMITS
        self.ssl_context = client_context(tls, verify=verify, ca_file=ca_file, cert=cert)
        self._sock: socket.socket | None = None
        self._conn: proto.Connection | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """Connect to the server (nothing to do if already connected)."""
        self._open()

    def disconnect(self) -> None:
        """Close the connection (nothing to do if not connected)."""
        sock, self._sock, self._conn = self._sock, None, None
        if sock is not None:
            sock.close()

    def send(self, data: Any) -> None:
        """Send one message (a dict), connecting first if needed."""
        self._write(lambda conn: conn.send(proto.Message(data)))

    def recv(self) -> Any:
        """Wait for the server's next message and return it."""
        if self._sock is None or self._conn is None:
            raise errors.ConnectionClosed("not connected: call connect() or send() first")
        sock, conn = self._sock, self._conn
        try:
            with self._translated():
                while True:
                    event = conn.next_event()
                    if isinstance(event, proto.Message):
                        return event.data
                    if isinstance(event, proto.ConnectionClosed):
                        raise errors.ConnectionClosed(
                            f"the tcpy server at {self.host}:{self.port} closed the connection"
                        )
                    conn.receive_data(sock.recv(_READ_SIZE))
        except errors.DataServeError:
            self.disconnect()
            raise

    def execute(self, cmd: str, **params: Any) -> Any:
        """Run ``cmd`` on the server with ``params`` and return its reply."""
        request = proto.Request(cmd, params)
        keep = self.connected
        try:
            self._write(lambda conn: conn.send(request))
            return self.recv()
        finally:
            if not keep:
                self.disconnect()

    def _open(self) -> tuple[socket.socket, proto.Connection]:
        if self._sock is None or self._conn is None:
            self._sock = connect(self.host, self.port, self.timeout, _WHAT, self.ssl_context)
            self._conn = proto.Connection(proto.Role.CLIENT, self.limits)
        return self._sock, self._conn

    def _write(self, encode: Callable[[proto.Connection], bytes]) -> None:
        sock, conn = self._open()
        data = encode(conn)
        try:
            with self._translated():
                sock.sendall(data)
        except errors.DataServeError:
            self.disconnect()
            raise

    def _translated(self) -> contextlib.AbstractContextManager[None]:
        return translate_errors(self.host, self.port, self.timeout, _WHAT)

    def __enter__(self) -> TCPClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()
