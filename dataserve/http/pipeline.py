"""The requests of one connection, answered one at a time in the order they came.

HTTP/1.1 answers pipelined requests in order: the request being answered
(``current``) runs the app as a task, and those read ahead of it wait in a
queue. The queue is bounded: at ``max_pipelined`` the connection stops
reading (``PIPELINE``, ``dataserve.http.flow``), whatever the app does, so a
client that pipelines without reading its replies cannot grow the server
without bound. Over the server's ``limit_concurrency`` (connections or
running requests), a request is answered 503 by uvicorn's
``service_unavailable`` instead of by the app.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from uvicorn.protocols.http.flow_control import service_unavailable

from .cycle import Cycle
from .flow import PIPELINE, ReadFlow

__all__ = ["Pipeline"]


class Pipeline:
    """The request being answered on a connection, and those queued behind it."""

    __slots__ = ("_app", "_limit", "_loop", "_max", "_queue", "_read_flow", "_state", "current")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: Any,
        server_state: Any,
        read_flow: ReadFlow,
        *,
        limit_concurrency: int | None,
        max_pipelined: int,
    ) -> None:
        self._loop = loop
        self._app = app
        self._state = server_state
        self._read_flow = read_flow
        self._limit = limit_concurrency
        self._max = max_pipelined
        #: The request being answered, or the last one answered.
        self.current: Cycle | None = None
        # Those read ahead of it, oldest last, each with the app that answers it.
        self._queue: collections.deque[tuple[Cycle, Any]] = collections.deque()

    @property
    def queued(self) -> bool:
        """Requests wait behind the one being answered."""
        return bool(self._queue)

    @property
    def answering(self) -> bool:
        """The current request's answer is still being produced."""
        cycle = self.current
        return cycle is not None and not cycle.response_complete

    def add(self, cycle: Cycle) -> None:
        """A request whose head is complete: answered now, or queued."""
        app = self._app
        limit = self._limit
        if limit is not None and (
            len(self._state.connections) >= limit or len(self._state.tasks) >= limit
        ):
            app = service_unavailable
        if not self.answering:
            self.current = cycle
            self._start(cycle, app)
        else:
            self._queue.appendleft((cycle, app))
            if len(self._queue) >= self._max:
                self._read_flow.hold(PIPELINE)

    def advance(self) -> bool:
        """The current request is answered: start the oldest queued one, if any (True)."""
        queue = self._queue
        if not queue:
            self._read_flow.release(PIPELINE)
            return False
        self.current, app = queue.pop()
        self._start(self.current, app)
        if len(queue) < self._max:
            self._read_flow.release(PIPELINE)
        return True

    def lost(self) -> None:
        """The connection is gone: every request on it learns so."""
        for cycle in (self.current, *(c for c, _ in self._queue)):
            if cycle is not None:
                cycle.lost()

    def _start(self, cycle: Cycle, app: Any) -> None:
        task = self._loop.create_task(cycle.run_asgi(app))
        tasks = self._state.tasks
        task.add_done_callback(tasks.discard)
        tasks.add(task)
