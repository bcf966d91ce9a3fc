"""What is recorded around each data request: request id, metrics, access line.

``observer_for(ops)`` is decided once, when the app is built: with everything
off it is ``None`` and the data endpoint pays nothing; otherwise an
``Observer`` that does only what is on. The endpoint calls ``begin`` before
a request and ``end`` after its answer (or after the client went away); it
knows the status and the byte counts itself, so nothing wraps ``receive``
and ``send``. For the console it also keeps the requests in flight (a set
entry per request, added and removed: no lock, no timer).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import MutableMapping
from typing import Any

from ..core.metrics import TransportMetrics, metrics
from . import logs
from .config import OpsConfig
from .requestid import HEADER, pick_request_id, reset_request_id, set_request_id

__all__ = ["CLIENT_CLOSED", "Observation", "Observer", "observer_for"]

Scope = MutableMapping[str, Any]

# Logged and counted when no answer was sent at all (the client went away
# before its request was complete): nginx's "client closed request".
CLIENT_CLOSED = 499

_NO_HEADERS: list[tuple[bytes, bytes]] = []


class Observation:
    """One request being observed: its start, id and the headers its answer carries."""

    __slots__ = ("headers", "request_id", "start", "token")

    def __init__(
        self,
        start: float,
        request_id: str | None,
        token: contextvars.Token[str | None] | None,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.start = start
        self.request_id = request_id
        self.token = token
        #: Added to the answer's headers (``X-Request-ID``).
        self.headers = headers


class Observer:
    """Request ids, metrics and access lines for the data endpoint."""

    def __init__(
        self,
        *,
        request_id: bool,
        metrics: TransportMetrics | None,
        log: bool,
        track: bool = False,
    ) -> None:
        self._request_id = request_id
        self._metrics = metrics
        self._log = log
        #: The requests begun and not yet ended (``Observation.start`` says
        #: since when), if ``track``; changed only on the event loop.
        self.in_flight: set[Observation] | None = set() if track else None

    def begin(self, scope: Scope) -> Observation:
        """A request starts: pick its id and make it the current one."""
        start = time.perf_counter()
        if not self._request_id:
            seen = Observation(start, None, None, _NO_HEADERS)
        else:
            incoming = None
            for name, value in scope["headers"]:
                if name == HEADER:
                    incoming = value
                    break
            rid = pick_request_id(incoming)
            seen = Observation(start, rid, set_request_id(rid), [(HEADER, rid.encode("ascii"))])
        if self.in_flight is not None:
            self.in_flight.add(seen)
        return seen

    def end(
        self, scope: Scope, resource: str, seen: Observation, status: int, received: int, sent: int
    ) -> None:
        """The request for ``resource`` is over: answered with ``status`` (``CLIENT_CLOSED`` if
        not at all), ``received`` body bytes in, ``sent`` out."""
        if seen.token is not None:
            reset_request_id(seen.token)
        if self.in_flight is not None:
            self.in_flight.discard(seen)
        duration = time.perf_counter() - seen.start
        if self._metrics is not None:
            self._metrics.observe(resource, status, duration, received, sent)
        if self._log:
            logs.access(scope, status, sent, received, duration, seen.request_id)


def observer_for(ops: OpsConfig) -> Observer | None:
    """The ``Observer`` doing what ``ops`` turns on; ``None`` if nothing is.

    With the console on, it keeps the requests in flight for its figures.
    """
    track = ops.console_on
    if not (ops.request_id or ops.metrics or ops.access_log or track):
        return None
    recorder = metrics(ops.max_resource_labels).transport("http") if ops.metrics else None
    return Observer(request_id=ops.request_id, metrics=recorder, log=ops.access_log, track=track)
