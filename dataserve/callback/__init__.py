"""httpserver.repy's callback API on uvicorn: one function answers every request.

::

    httpdid = httpserver_registercallback(("127.0.0.1", 8080), callback)
    ...
    httpserver_stopcallback(httpdid)

``callback(request)`` gets the request dict (``verb``, ``path``, ``querystr``,
``querydict``, ``version``, ``datastream``, ``headers``, ``httpdid``,
``remoteipstr``, ``remoteportnum``) and returns the response dict
(``version``, ``statuscode``, optional ``statusmsg``, ``headers``,
``message``). Every registered server runs on one shared background
event-loop thread; ``def`` callbacks run on their server's own handler
threads, ``async def`` callbacks on the loop. ``callback_app(callback)`` is
the same server as an ASGI app, for uvicorn or a container. The whole
contract is in ``docs/callback.md``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from ..core.limits import DEFAULT_LIMITS, Limits
from ..core.running import LoopThread
from ..http.server import BackgroundServer
from .app import CallbackApp
from .messages import RequestHeaders, check_address, check_callback, check_threads
from .stream import DataStream

__all__ = [
    "CallbackApp",
    "DataStream",
    "RequestHeaders",
    "callback_app",
    "httpserver_registercallback",
    "httpserver_stopcallback",
]

logger = logging.getLogger("dataserve.callback")

# One counter for every app, registered or not, so an httpdid is unique in
# the process and never reused: a stale id can never stop a newer server.
_ids = itertools.count(1)
_servers: dict[int, BackgroundServer] = {}
_lock = threading.Lock()


def callback_app(
    cbfunc: Callable[..., Any],
    *,
    threads: int | None = None,
    limits: Limits | None = None,
) -> CallbackApp:
    """The ASGI app that answers every request with ``cbfunc(request)``.

    It is the app ``httpserver_registercallback`` serves; run it with
    ``uvicorn module:app`` or under any ASGI server. ``threads`` is how many
    ``def`` callbacks run at once (default ``limits.handler_threads``, 1:
    calls are serialised, so a callback's globals need no lock). The app's
    ``httpdid`` is the id its request dicts carry.
    """
    check_callback(cbfunc)
    limits = _limits(limits, threads)
    return CallbackApp(cbfunc, httpdid=next(_ids), limits=limits)


def httpserver_registercallback(
    addresstuple: tuple[str, int],
    cbfunc: Callable[..., Any],
    *,
    threads: int | None = None,
    limits: Limits | None = None,
) -> int:
    """Serve HTTP on ``addresstuple`` (``(host, port)``) with ``cbfunc``; return its httpdid.

    Returns once the port accepts connections. Raises ``TypeError`` or
    ``ValueError`` for a malformed address (not a ``(str, int)`` tuple, port
    outside 1..65535), a callback that is not callable or a bad ``threads``;
    ``OSError`` naming the address when it cannot be listened on (in use,
    not allowed, unknown host), with nothing left running.
    """
    host, port = check_address(addresstuple)
    check_callback(cbfunc)
    _refuse_on_shared_loop("httpserver_registercallback")
    app = callback_app(cbfunc, threads=threads, limits=limits)
    server = BackgroundServer(app, host=host, port=port, limits=app.limits)
    try:
        server.start()
    except OSError as exc:
        app.endpoint.dispatcher.close()
        message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise (OSError(exc.errno, message) if exc.errno else OSError(message)) from exc
    except BaseException:
        app.endpoint.dispatcher.close()
        raise
    with _lock:
        _servers[app.httpdid] = server
    logger.info("callback %d serving on %s", app.httpdid, server.url)
    return app.httpdid


def httpserver_stopcallback(callbackid: int) -> None:
    """Stop the server ``callbackid`` names; in-flight requests finish first.

    Returns once the port is released. Raises ``KeyError`` for an id that is
    not a running server's: unknown, already stopped, or not an int.
    """
    _refuse_on_shared_loop("httpserver_stopcallback")
    with _lock:
        # True == 1 and 1.0 == 1 as dict keys: only a real int can name a server.
        server = None
        if isinstance(callbackid, int) and not isinstance(callbackid, bool):
            server = _servers.pop(callbackid, None)
    if server is None:
        raise KeyError(f"no callback server has the id {callbackid!r}")
    server.stop()
    logger.info("callback %d stopped", callbackid)


def _refuse_on_shared_loop(name: str) -> None:
    """Waiting for the servers' loop from the loop itself would never end."""
    if LoopThread.in_shared_thread():
        raise RuntimeError(
            f"{name} waits for the servers' event loop, so it cannot run on it: "
            f"call it from another thread (await asyncio.to_thread({name}, ...))"
        )


def _limits(limits: Limits | None, threads: int | None) -> Limits:
    if limits is None:
        limits = DEFAULT_LIMITS
    elif not isinstance(limits, Limits):
        raise TypeError(f"limits must be a Limits, not {type(limits).__name__}")
    if threads is not None:
        limits = limits.replace(handler_threads=check_threads(threads))
    return limits
