"""Native-framing clients: ``RawDataClient`` (blocking) and ``AsyncRawDataClient``.

Both raise exactly what ``dataserve.HTTPDataClient`` raises for the same
failure: an ERROR frame's code picks the ``ResponseError`` subclass
(``error_for_status``: 404 ``NotHandled``, 500 ``HandlerError``...), a reply
that does not decode is ``DecodeError``, no answer is a ``TransportError``
(``ConnectError``, ``TimeoutError``, ``ConnectionClosed``), a missing or
wrong token ``Unauthorized``.

Both send a token (``token=``, default ``$DATASERVE_TOKEN``) in an AUTH
frame right after the preface when they have one, and speak TLS when asked
(``tls=True``, or any of ``ca_file``, ``cert``, ``verify=False``): the
server's certificate is verified against the system's CAs or ``ca_file``
unless ``verify=False`` is said explicitly; ``cert=(certfile, keyfile)``
presents a client certificate. ``uds=PATH`` connects to a server's Unix
domain socket instead of TCP.

``send(resource, payload=None, *, into=None, progress=None)`` is
``HTTPDataClient.send``: a file object or path as the payload is streamed,
``into`` streams the reply into a file and returns the number of bytes
written (``rawproto.native.files``). A large answer is read straight into
one buffer of its size (``recv_into``), which becomes the ``bytes`` returned:
one allocation, one copy from the kernel.

Everything but the I/O lives in ``Exchange`` (``rawproto.native.exchange``):
request ids, request frames, the protocol object and turning answers into
values or exceptions. The blocking client uses a plain socket (no event
loop): its ``Link`` (``rawproto.native.link``) keeps the connection, and a
``Call`` (``rawproto.native.call``) moves one request and its answer over it.
The asyncio client (``rawproto.native.aclient``) runs a ``Session`` on the
engine and pipelines.
"""

from __future__ import annotations

import os
from typing import Any

from ..proto.native import Error, Reply
from .aclient import AsyncRawDataClient
from .call import Call
from .exchange import DEFAULT_TIMEOUT, ClientSettings, Exchange
from .files import Progress, Source, Target, Writable, is_file
from .link import Link

__all__ = ["DEFAULT_TIMEOUT", "AsyncRawDataClient", "RawDataClient"]


class RawDataClient(ClientSettings):
    """Blocking native-framing client: ``send(resource, payload=None)``.

    One connection, opened on first use and reopened after the server closed
    it; plain sockets, no event loop. ``timeout`` bounds the wait for each
    answer. ``uds``, ``token``, ``tls``, ``verify``, ``ca_file``, ``cert``:
    see the module docstring; ``options=ClientOptions(...)`` gives the
    timeouts, TLS settings and token as one value instead. Use it as a
    context manager, or call ``close()``.
    """

    def _init_state(self) -> None:
        self._link = Link(self)

    def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        into: Writable | str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """Send ``payload`` to ``resource`` and return the decoded answer.

        ``payload`` is a value for the codec (``None``: no payload), or a
        binary file object or ``os.PathLike`` path, streamed as
        ``application/octet-stream`` without reading it whole. With ``into``
        (a writable binary file, or a path), the reply's body is streamed
        there as the server encoded it and the number of bytes written is
        returned. ``progress(direction, done, total)`` is called as the
        payload goes out and as the reply is written.
        """
        source = Source(payload) if is_file(payload) else None
        target = Target(into, progress) if into is not None else None
        failed = True
        try:
            exchange, answer = self._call(resource, payload, source, target, progress)
            failed = type(answer) is not Reply
        finally:
            if source is not None:
                source.close()
            if target is not None:
                target.close(failed)
        if exchange.ends_connection(answer):
            self.close()  # the next request goes on a fresh connection
        if target is not None and type(answer) is Reply:
            return target.written
        return exchange.outcome(answer)

    def _call(
        self,
        resource: str,
        payload: Any,
        source: Source | None,
        target: Target | None,
        progress: Progress | None,
    ) -> tuple[Exchange, Reply | Error]:
        sock, exchange = self._link.open()
        if source is not None:
            request_id, head = exchange.request_head(resource, exchange.bytes_tag, source.size)
            body: Any = source
        else:
            request_id, head, body = exchange.request_parts(resource, payload)
        call = Call(self._link, sock, exchange, request_id, target)
        try:
            answer = call.upload(head, body, progress)
            while answer is None:
                answer = call.answer()
        except OSError as exc:
            self.close()  # the connection's state is unknown now
            self._link.error(exc)
        except BaseException:
            self.close()
            raise
        return exchange, answer

    def close(self) -> None:
        self._link.close()

    def __enter__(self) -> RawDataClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
