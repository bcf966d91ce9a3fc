"""pyts' API (seed 000) on rawproto: ``Server``, ``Request``, ``Response``.

Server::

    from rawproto.pyts import Server, Request, Response

    app = Server("127.0.0.1", 3000)

    def index(request: Request, resp: Response):
        resp.setStatus(200, "OK")
        resp.setBody("<1>Index page</1>")
        resp.SendResponse()

    app.routeHandler("/", index)
    app.startServer()          # INFO:: Server started; 127.0.0.1:3000

Client::

    req = Request("127.0.0.1", 3000, "/")
    req.setHeader("TEST-HEADER", True)
    req.setBody({"test": True})
    response = req.SendRequest()
    response.StatusCode, response.StatusText, response.Headers, response.Body

The wire is pyts', byte for byte (``rawproto.proto.pyts``): an original pyts
client works against this server and this client against an original
server. Beyond the original:

* documents of any size (up to ``Limits.max_structured_size``, and within the
  core's budget for decoded structures; the original reads
  1024 bytes), complete when the JSON object closes;
* clients are served concurrently (``threads`` handlers at once);
* a handler that returns without ``SendResponse()`` still answers: what it
  set (status 200 if it set no status), or 500 if it set nothing; a handler
  that raises gets a 500 document naming the exception's type (its text
  goes to the log only), or the status and message of a ``DataServeError``
  it raised on purpose; ``SendResponse()`` twice raises in the handler
  instead of corrupting the connection;
* an unknown endpoint gets the original's 404 document; a request that is
  not JSON or lacks the ``HOST``, ``PORT`` or ``ENDPOINT`` header gets a 400
  document; a client that stalls mid-document gets a 408 document after
  ``Limits.frame_timeout``; a handler that has not answered within
  ``Limits.handler_timeout`` gets a 504 document (its thread runs on, a
  late ``SendResponse()`` raises in it, and a new thread serves the next
  requests); ``startServer()`` stops cleanly on
  Ctrl-C or SIGTERM, letting running handlers answer (one still running
  when ``shutdown_timeout`` ends gets a 503 document);
* ``tls=TLSConfig(...)`` serves TLS, and ``Request`` takes ``tls=True``,
  ``ca_file``, ``cert`` or ``verify=False``. pyts' wire has no token: a
  server bound beyond loopback without client certificates logs a warning.

Endpoints are routes of ``dataserve.core.routing.Router``: ``"/items/{id}"``
matches ``/items/7`` and the handler finds ``request.params == {"id": "7"}``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, ClassVar, cast

from dataserve.core import errors
from dataserve.core.errors import DataServeError, LocalProtocolError
from dataserve.core.guard import Guard, Settled
from dataserve.core.limits import DEFAULT_LIMITS, Limits
from dataserve.core.net import FACADE_CLIENT_TIMEOUT
from dataserve.core.routing import Router
from dataserve.core.security import TLSConfig

from ._blocking import connect, translate_errors
from ._security import client_context
from .engine.oneshot import OneShot
from .engine.running import FacadeServer
from .proto import pyts as proto

__all__ = ["Headers", "Request", "Response", "RouteHandler", "Server"]

logger = logging.getLogger("rawproto.pyts")

#: ``handler(request, response)``; it answers with ``response.SendResponse()``.
RouteHandler = Callable[["Request", "Response"], Any]

_READ_SIZE = 256 * 1024
_WHAT = "pyts server"


class Headers(dict[str, Any]):
    """A document's headers: a ``dict`` with the original's ``Headers`` methods."""

    def setHeader(self, header: str, value: Any) -> None:
        self[header] = value

    def getHeaders(self) -> Headers:
        return self

    @property
    def headers(self) -> Headers:
        """The headers themselves (the original keeps them in ``.headers``)."""
        return self

    @headers.setter
    def headers(self, value: dict[str, Any]) -> None:
        self.clear()
        self.update(value)


class Request:
    """A pyts request: built by a client, or received by a route handler.

    ``Headers`` start as the original sets them (``VERSION``, ``type``,
    ``REQUEST-URL``, ``HOST``, ``PORT``, ``ENDPOINT``); ``Body`` is ``{}``
    until ``setBody``. ``timeout`` bounds connecting and waiting for the
    answer in ``SendRequest``. TLS when ``tls=True`` or any of ``ca_file``,
    ``cert``, ``verify=False`` is given (the server is verified unless
    ``verify=False``).
    """

    def __init__(
        self,
        HOST: str,
        PORT: int,
        ENDPOINT: str,
        *,
        timeout: float | None = FACADE_CLIENT_TIMEOUT,
        limits: Limits | None = None,
        tls: bool | ssl.SSLContext = False,
        verify: bool = True,
        ca_file: str | None = None,
        cert: tuple[str, str] | None = None,
    ) -> None:
        self.HOST = HOST
        self.PORT = PORT
        self.ENDPOINT = ENDPOINT
        self.Headers = Headers(proto.request_headers(HOST, PORT, ENDPOINT))
        self.Body: Any = {}
        #: Parameters captured by the endpoint's route template (server side).
        self.params: dict[str, str] = {}
        self.timeout = timeout
        self.limits = limits or DEFAULT_LIMITS
        self.ssl_context = client_context(tls, verify=verify, ca_file=ca_file, cert=cert)

    @classmethod
    def _received(cls, event: proto.Request, params: dict[str, str]) -> Request:
        headers = event.headers
        request = cls(headers["HOST"], headers["PORT"], headers["ENDPOINT"])
        request.Headers = Headers(headers)
        request.Body = event.body
        request.params = params
        return request

    def setHeaders(self, headers: dict[str, Any]) -> None:
        """Replace every header (the original's "not recommended" call)."""
        self.Headers.headers = headers

    def setHeader(self, header: str, value: Any) -> None:
        self.Headers[header] = value

    def setBody(self, body: Any) -> None:
        self.Body = body

    def getRequest(self) -> str:
        """The request document as the original writes it."""
        return proto.encode_document(self.Headers, self.Body).decode("utf-8")

    def SendRequest(self) -> Response:
        """Send the request on a new connection and return the server's ``Response``.

        Raises ``dataserve.core.errors.TransportError`` subclasses when no
        answer arrives (``ConnectError``, ``TimeoutError``,
        ``ConnectionClosed``), and ``RemoteProtocolError`` when the answer is
        not a pyts document. An error status is a ``Response`` like any other.
        """
        conn = proto.Connection(proto.Role.CLIENT, self.limits)
        data = conn.send(proto.Request(dict(self.Headers), self.Body))
        host, port = str(self.HOST), int(self.PORT)
        with (
            connect(host, port, self.timeout, _WHAT, self.ssl_context) as sock,
            translate_errors(host, port, self.timeout, _WHAT),
        ):
            sock.sendall(data)
            while True:
                event = conn.next_event()
                if isinstance(event, proto.Response):
                    return Response._received(event)
                if isinstance(event, proto.ConnectionClosed):
                    raise errors.ConnectionClosed(
                        f"the {_WHAT} at {host}:{port} closed the connection without answering"
                    )
                conn.receive_data(sock.recv(_READ_SIZE))


class Response:
    """A pyts response: filled in by a route handler, or received by a client.

    A handler sets ``setStatus(code, text)``, headers and ``setBody`` and
    sends it with ``SendResponse()`` (once). On the client side,
    ``StatusCode``, ``StatusText``, ``Headers`` and ``Body`` hold what the
    server sent.
    """

    def __init__(self) -> None:
        self.Headers = Headers(proto.response_headers())
        self.StatusCode: Any = 0
        self.StatusText: Any = ""
        self.Body: Any = {}
        self._sender: Callable[[Response], None] | None = None
        self._touched = False
        self._status_set = False

    @classmethod
    def _received(cls, event: proto.Response) -> Response:
        response = cls()
        response.Headers = Headers(event.headers)
        response.Body = event.body
        response.StatusCode = event.headers.get("STATUS-CODE", 0)
        response.StatusText = event.headers.get("STATUS-TEXT", "")
        return response

    def setHeaders(self, headers: dict[str, Any]) -> None:
        self.Headers.headers = headers
        self._touched = True

    def setHeader(self, header: str, value: Any) -> None:
        self.Headers[header] = value
        self._touched = True

    def setStatus(self, code: int, text: str) -> None:
        proto.set_status(self.Headers, code, text)
        self.StatusCode = code
        self.StatusText = text
        self._touched = self._status_set = True

    def setBody(self, body: Any) -> None:
        self.Body = body
        self._touched = True

    def getResponse(self) -> str:
        """The response document as the original writes it."""
        return proto.encode_document(self.Headers, self.Body).decode("utf-8")

    def SendResponse(self) -> None:
        """Send the response to the client; a second call raises ``LocalProtocolError``."""
        if self._sender is None:
            raise RuntimeError("this Response does not belong to a request being served")
        self._sender(self)

    def _completed(self) -> proto.Response:
        """What to send for a handler that returned without ``SendResponse()``."""
        if not self._touched:
            return proto.error_response(
                500, "the handler returned without setting or sending a response"
            )
        headers = dict(self.Headers)
        if not self._status_set and "STATUS-CODE" not in headers:
            # The original's clients read STATUS-CODE and STATUS-TEXT.
            proto.set_status(headers, 200, "OK")
        return proto.Response(headers, self.Body)


# --- the server ------------------------------------------------------------------------


class _Service:
    """The engine service for one ``Server``: routes, handler threads, limits.

    pyts answers one document per connection, so it is served on the
    engine's ``OneShot`` connections (``rawproto.engine.oneshot``): each
    request becomes an ``_Exchange``.
    """

    one_shot: ClassVar[bool] = True

    def __init__(self, router: Router[RouteHandler], limits: Limits) -> None:
        self.router = router
        self.limits = limits
        self.guard = Guard(limits, "pyts-handler")

    def protocol(self) -> proto.Connection:
        return proto.Connection(proto.Role.SERVER, self.limits)

    def respond(self, shot: OneShot, event: object) -> asyncio.Future[Any] | None:
        if not isinstance(event, proto.Request):
            return None
        exchange = shot.owner = _Exchange(shot, self, event)
        return exchange.start()

    def abandoned(self, shot: OneShot) -> None:
        exchange = shot.owner
        if exchange is not None:
            exchange.answer(
                proto.error_response(503, "the server shut down before the handler answered")
            )

    async def aclose(self) -> None:
        self.guard.close()


class _Exchange:
    """One pyts request on a ``OneShot``: its handler's call and the one answer."""

    __slots__ = (
        "_handed",
        "_handing",
        "endpoint",
        "event",
        "pyts",
        "response",
        "service",
        "shot",
    )

    def __init__(self, shot: OneShot, service: _Service, event: proto.Request) -> None:
        self.shot = shot
        self.pyts = cast(proto.Connection, shot.proto)
        self.service = service
        self.event = event
        self.endpoint = event.endpoint
        self.response: Response | None = None
        self._handing = threading.Lock()
        self._handed = False  # the answer is on its way: a further SendResponse raises

    def start(self) -> asyncio.Future[Any] | None:
        match = self.service.router.match(self.endpoint)
        if match is None:
            self.answer(proto.not_found(self.endpoint))
            return None
        request = Request._received(self.event, match.params)
        response = self.response = Response()
        response._sender = self._send_from_handler
        return self.service.guard.start(match.endpoint, (request, response), self._settled)

    def _settled(self, settled: Settled) -> None:
        """The handler returned (or raised, or ran out of time): answer if it did not."""
        if settled.ok:
            assert self.response is not None
            self.answer(self.response._completed())
            return
        # The core's one policy: 504 past the deadline; 500 naming the
        # exception's type, or a DataServeError's own status and message.
        endpoint = self.endpoint
        outcome = settled.outcome(endpoint, self.service.limits.handler_timeout)
        if settled.timed_out:
            logger.error("%s: %s", endpoint, outcome.message)
        elif isinstance(settled.error, DataServeError):  # raised on purpose
            logger.info("%s: %s", endpoint, outcome.message)
        else:
            logger.error("the handler for %s raised", endpoint, exc_info=settled.error)
        self.answer(proto.error_response(outcome.status, outcome.message))

    def answer(self, response: proto.Response) -> None:
        """Send ``response`` and close, unless the connection already answered; 500 if
        JSON cannot carry it."""
        shot = self.shot
        if self.pyts.response_sent:
            shot.close()
            return
        with self._handing:
            self._handed = True  # a late SendResponse from a handler thread raises
        try:
            shot.answer(response)
        except LocalProtocolError as exc:
            shot.answer(proto.error_response(500, exc.message))

    def _send_from_handler(self, response: Response) -> None:
        """``Response.SendResponse``: from a handler thread or from the loop.

        From a thread the document is handed to the loop without waiting for
        it to be written: the handler goes on (and returns) while the loop
        sends, which spares a thread crossing per call. The loop then answers
        500 if the document cannot be sent (not JSON). A second call raises at
        once, as it does on the loop.
        """
        document = proto.Response(dict(response.Headers), response.Body)
        loop = self.shot.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.shot.answer(document)  # a second call raises LocalProtocolError
            return
        with self._handing:
            if self._handed:
                raise LocalProtocolError(proto.ALREADY_SENT[proto.Role.SERVER])
            self._handed = True
        loop.call_soon_threadsafe(self._answer_sent, document)

    def _answer_sent(self, document: proto.Response) -> None:
        """A handler thread's document, on the loop."""
        if self.pyts.response_sent:
            return  # answered meanwhile (its deadline passed)
        try:
            self.shot.answer(document)
        except LocalProtocolError as exc:
            self.shot.answer(proto.error_response(500, exc.message))


class Server(FacadeServer):
    """A pyts server: ``routeHandler(endpoint, fn)`` then ``startServer()``.

    ``threads`` handlers run at once (``def`` handlers run on threads,
    ``async def`` ones on the event loop); ``limits`` sets sizes and
    timeouts, ``tls`` serves TLS. ``start()``/``stop()`` serve in the
    background instead. A host other than loopback logs a warning unless
    ``tls`` requires client certificates (pyts has no token).
    """

    FRAMING = "pyts"

    def __init__(
        self,
        HOST: str,
        PORT: int,
        *,
        threads: int = 4,
        limits: Limits | None = None,
        tls: TLSConfig | None = None,
    ) -> None:
        self.HOST = HOST
        self.PORT = PORT
        self.limits = limits or DEFAULT_LIMITS
        self.threads = threads  # limits.handler_threads (see FacadeServer.threads)
        self.tls = tls
        #: Endpoint -> handler, as registered (the original's attribute).
        self.RouteHandlers: dict[str, RouteHandler] = {}

    def routeHandler(self, route: str, cb: RouteHandler) -> None:
        """Call ``cb(request, response)`` for requests to ``route`` (replaces an earlier one)."""
        self.RouteHandlers[route] = cb

    def _service(self) -> _Service:
        router: Router[RouteHandler] = Router(self.RouteHandlers)
        return _Service(router, self.limits)

    def _address(self) -> tuple[str, int]:
        return self.HOST, self.PORT

    def _bound(self, port: int) -> None:
        self.PORT = port

    def startServer(self) -> None:
        """Serve until Ctrl-C or SIGTERM; prints ``INFO:: Server started; HOST:PORT``."""
        self._serve_until_signalled(lambda host, port: f"INFO:: Server started; {host}:{port}")
