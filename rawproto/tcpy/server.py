"""``TCPServer``: tcpy's command server on the engine, handlers on a thread pool."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from dataserve.core import errors
from dataserve.core.deadlines import Watchdogs, resolution_for
from dataserve.core.errors import DataServeError, LocalProtocolError, RemoteProtocolError
from dataserve.core.guard import Guard, Settled
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.routing import Router
from dataserve.core.security import TLSConfig

from ..engine import Connection as EngineConnection
from ..engine import Session
from ..engine.running import FacadeServer
from ..proto import tcpy as proto
from ..proto.tcpy import DEFAULT_PORT
from .handler import Channel

__all__ = ["TCPServer"]

logger = logging.getLogger("rawproto.tcpy")


class _Parameters:
    """What a command's target takes, read once from its signature (``inspect`` is slow)."""

    __slots__ = ("known", "named", "required", "takes_any")

    def __init__(self, target: Any) -> None:
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):  # a builtin without a signature: just call it
            self.known = False
            self.named: frozenset[str] = frozenset()
            self.required: tuple[str, ...] = ()
            self.takes_any = True
            return
        self.known = True
        kinds = inspect.Parameter
        parameters = list(signature.parameters.values())
        self.named = frozenset(
            p.name
            for p in parameters
            if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        )
        self.required = tuple(
            p.name
            for p in parameters
            if p.kind is not kinds.VAR_POSITIONAL
            and p.kind is not kinds.VAR_KEYWORD
            and p.default is p.empty
        )
        self.takes_any = any(p.kind is kinds.VAR_KEYWORD for p in parameters)

    def problem(self, command: str, params: dict[str, Any]) -> str | None:
        """Why ``target(**params)`` cannot be called, named for the client, or ``None``."""
        if not self.known:
            return None
        missing = [name for name in self.required if name not in params]
        unexpected = [] if self.takes_any else [name for name in params if name not in self.named]
        if not missing and not unexpected:
            return None
        problems = []
        if missing:
            problems.append(
                f"missing parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
            )
        if unexpected:
            problems.append(
                f"unexpected parameter{'s' if len(unexpected) > 1 else ''} {', '.join(unexpected)}"
            )
        return f"command {command!r}: {'; '.join(problems)}"


def _run_handler(target: Any, params: dict[str, Any], channel: Channel) -> Any:
    """On a handler thread: make the handler, connect it, run ``execute()``."""
    handler = target(**params)
    execute = getattr(handler, "execute", None)
    if not callable(execute):
        return handler  # a plain callable's return value is the reply
    with contextlib.suppress(AttributeError):  # a class with __slots__ cannot converse
        handler._channel = channel
    return execute()


class _Service:
    """The engine service for one ``TCPServer``: commands, handler threads, limits.

    What a failed command is answered is the core's one policy
    (``dataserve.core.guard``, ``dataserve.core.outcome``) in tcpy's words:
    tcpy's wire has no status, so every failure is ``{"error": True,
    "message": ...}``, and only a ``DataServeError`` raised on purpose puts
    its own text in the message.
    """

    def __init__(self, commands: dict[str, Any], limits: Limits) -> None:
        self.router: Router[Any] = Router(commands)
        self.limits = limits
        self.guard = Guard(limits, "tcpy-handler")
        # recv() deadlines, at most a quarter of idle_timeout late (0.25 s at most).
        self.recv_watchdogs = Watchdogs(resolution_for(limits.idle_timeout))
        self._parameters: dict[int, tuple[Any, _Parameters]] = {}

    def session(self, conn: EngineConnection) -> _Session:
        return _Session(conn, self)

    async def aclose(self) -> None:
        self.guard.close()

    def start(
        self, request: proto.Request, channel: Channel, done: Callable[[dict[str, Any]], None]
    ) -> asyncio.Future[Any] | None:
        """Begin answering ``request``: ``done(reply map)`` is called on the loop, the
        handler's map or tcpy's error map, maybe before this returns. Returns the
        handler's call while it runs (cancel it if the connection is gone)."""
        match = self.router.match(request.command)
        if match is None:
            known = ", ".join(sorted(self.router)[:20]) or "none"
            done(
                {
                    "error": True,
                    "message": f"unknown command {request.command!r} (this server has: {known})",
                }
            )
            return None
        problem = self._parameters_of(match.endpoint).problem(request.command, request.params)
        if problem is not None:
            done({"error": True, "message": problem})
            return None
        settled = functools.partial(self._settled, request.command, channel, done)
        return self.guard.start(_run_handler, (match.endpoint, request.params, channel), settled)

    def _parameters_of(self, target: Any) -> _Parameters:
        found = self._parameters.get(id(target))
        if found is None or found[0] is not target:
            found = self._parameters[id(target)] = (target, _Parameters(target))
        return found[1]

    def _settled(
        self,
        command: str,
        channel: Channel,
        done: Callable[[dict[str, Any]], None],
        settled: Settled,
    ) -> None:
        what = f"command {command!r}"
        if not settled.ok:
            outcome = settled.outcome("", self.limits.handler_timeout, what)
            if settled.timed_out:
                # The thread cannot be stopped: it runs on, its reply is dropped,
                # and its conversation with the client is over.
                channel.close()
                logger.error("%s", outcome.message)
            elif isinstance(settled.error, DataServeError):  # raised on purpose
                logger.info("%s: %s", what, outcome.message)
            else:
                logger.error("%s raised", what, exc_info=settled.error)
            done({"error": True, "message": outcome.message})
            return
        reply = settled.value
        if not isinstance(reply, dict):
            reply = {
                "error": True,
                "message": f"{what} returned a {type(reply).__name__}, not a dict "
                "(return self.success(...))",
            }
        done(reply)


class _SessionChannel(Channel):
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

    def _serve(self, request: proto.Request) -> asyncio.Future[None]:
        """Answer ``request``; the future the engine counts as in flight is done once
        the reply is sent (no task: the handler's call is a future on the pool)."""
        answered: asyncio.Future[None] = self.conn.loop.create_future()
        pending = self.service.start(
            request, _SessionChannel(self), functools.partial(self._reply, answered)
        )
        if pending is not None and not answered.done():
            # The connection is gone (the engine cancels what is in flight): so is the call.
            answered.add_done_callback(lambda f: pending.cancel() if f.cancelled() else None)
        return answered

    def _reply(self, answered: asyncio.Future[None], reply: dict[str, Any]) -> None:
        try:
            if self.conn.is_closed or self.tcpy.must_close or answered.done():
                return  # the conversation broke the protocol: already answered
            try:
                self.conn.send(proto.Reply(reply))
            except LocalProtocolError as exc:  # a reply msgpack cannot carry
                self.conn.send(proto.Reply(proto.error_map(exc)))
        except Exception as exc:
            if not answered.done():
                answered.set_exception(exc)  # the engine logs it and closes
        finally:
            self._hold(False)
            if not answered.done():
                answered.set_result(None)

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
            deadline = self.service.recv_watchdogs.get().start(timeout)
            try:
                return await waiter
            except asyncio.CancelledError:
                if not deadline.owns():
                    raise
                raise errors.TimeoutError(
                    f"the client sent no message within {timeout:g} s"
                ) from None
            finally:
                deadline.stop()
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
        self.limits = limits or DEFAULT_LIMITS
        self.threads = threads  # limits.handler_threads (see FacadeServer.threads)
        self.poll_intv = poll_intv
        self.tls = tls

    def _service(self) -> _Service:
        return _Service(self.commands, self.limits)

    def _address(self) -> tuple[str, int]:
        return self.host, self.port

    def _bound(self, port: int) -> None:
        self.port = port

    def listen(self) -> None:
        """Serve until Ctrl-C or SIGTERM; prints where it listens."""
        self._serve_until_signalled(lambda host, port: f"TCPServer is listening at {host}:{port}!")
