"""Event loops for rawproto: the core's, under the names rawproto has always used.

``run(coro)`` runs a coroutine to completion on a new loop (uvloop's when
installed). ``LoopThread.shared()`` is the process's one daemon thread
running a loop for every blocking API over the engine (the tinyproto facade,
``BackgroundRawServer``) and for the HTTP side's background servers alike.
Both live in ``dataserve.core.running``.
"""

from __future__ import annotations

from dataserve.core.running import LoopThread, new_event_loop, run

__all__ = ["LoopThread", "new_event_loop", "run"]
