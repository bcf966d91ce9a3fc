"""Large body buffers kept warm for the next body, for a while.

A fresh buffer costs more than the bytes copied into it: each 4 KiB page is
faulted in and zeroed by the kernel on its first touch. Measured on this
project's 2-core VM, filling 512 MiB of fresh memory took 0.27-0.30 s, and
0.026 s when the same memory was filled again; prefaulting it
(``MADV_POPULATE_WRITE``) costs the same as the faults. Copying a body off a
socket is about as fast as the second figure, so for a large body the faults
are most of the server's work. The original dataserve's ``read(length)``
pays them on every request, and so did we.

``BufferCache`` keeps the buffers of bodies a server has handed out, and
gives one back for the next body of a like size once nobody holds it any
more (the handler returned and the reply was sent). Allocators do the same
with the memory they free (jemalloc returns it after 10 s by default); this
one does it for the objects the handler sees:

* Only bodies of ``CACHE_FROM`` (1 MiB) and more; smaller ones come from
  the allocator's heap, which already reuses them.
* A buffer is reused only when its reference count says the cache holds the
  sole reference: a handler that keeps the body (or a view of it, or an
  array over it) keeps it for good, and the cache lets go of it.
* Sizes come in classes, eight per doubling, so a body of 60 MiB can reuse
  the buffer of one of 62 MiB. A buffer is at most 1/8 larger than its body;
  the pages past the body are not touched, so they cost no memory.
* A miss first drops the free buffers it could not use, so the cache never
  adds to the peak memory of the bodies in flight at once: it only holds
  that memory for up to ``linger`` seconds after its last use. At most
  ``retain`` bytes are held (0: no cache).

The buffers are ``bytes`` objects (``dataserve.core.buffers``); reusing one
rewrites its length and clears its cached hash, which only CPython's layout
allows. Elsewhere, and on a free-threaded build, the cache is off.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import buffers
from .limits import Limits

__all__ = ["CACHE_FROM", "BufferCache", "size_class"]

#: Bodies smaller than this are never cached (the allocator reuses them already).
CACHE_FROM = buffers.CACHE_FROM

#: References to a tracked buffer nobody else holds: the cache's entry, and
#: the argument of ``sys.getrefcount``.
_SOLE = 2


def size_class(size: int) -> int:
    """The capacity a body of ``size`` bytes gets: eight classes per doubling."""
    step = 1 << max(size.bit_length() - 4, 0)
    return -(-size // step) * step


class _Lent:
    __slots__ = ("capacity", "obj", "since")

    def __init__(self, capacity: int, obj: bytes, since: float) -> None:
        self.capacity = capacity
        self.obj = obj
        self.since = since


class BufferCache:
    """Body buffers of ``CACHE_FROM`` bytes and more, reused within ``linger`` seconds.

    ``take(size)`` gives a ``bytes`` object of ``size`` bytes to fill (a
    reused one, or a new one with room for its class); ``lend(obj)`` is
    told when that object is handed out, and from then on the cache watches
    for the moment it is free again. Use one cache from one event loop's
    thread; its linger timer runs on that loop.
    """

    def __init__(
        self, retain: int, linger: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if retain < 0 or linger <= 0:
            raise ValueError(f"retain must be >= 0 and linger > 0, not {retain} and {linger}")
        self.retain = retain
        self.linger = linger
        self._clock = clock
        self._lent: list[_Lent] = []
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        #: Counters: bodies given a reused buffer, and given a new one.
        self.reused = 0
        self.allocated = 0

    @classmethod
    def from_limits(cls, limits: Limits) -> BufferCache | None:
        """The cache a server with these limits keeps (``None``: off)."""
        if not enabled() or limits.buffer_retain < CACHE_FROM:
            return None
        return cls(limits.buffer_retain, limits.buffer_linger)

    def __reduce__(self) -> tuple[Any, ...]:
        # A server's config travels to its worker processes: the settings
        # go, the buffers and the timer stay.
        return (type(self), (self.retain, self.linger))

    @property
    def held(self) -> int:
        """Bytes of the buffers tracked now (free or still in use)."""
        return sum(entry.capacity for entry in self._lent)

    def take(self, size: int) -> bytes:
        """A ``bytes`` object of ``size`` bytes, its content undefined, referenced
        by nobody else: fill it through ``buffers.writable_view`` before sharing it."""
        capacity = size_class(size)
        with self._lock:
            lent = self._lent
            for i in range(len(lent)):
                entry = lent[i]
                if entry.capacity == capacity and sys.getrefcount(entry.obj) == _SOLE:
                    del lent[i]
                    obj = entry.obj
                    entry.obj = b""
                    buffers.reshape(obj, size)
                    self.reused += 1
                    return obj
            # A miss: what is free now goes, before the new buffer is made.
            self._lent = [entry for entry in lent if sys.getrefcount(entry.obj) > _SOLE]
        obj = buffers.new_bytes(capacity)
        if capacity != size:
            buffers.reshape(obj, size)
        self.allocated += 1
        return obj

    def lend(self, obj: bytes) -> None:
        """``obj``, made by ``take``, is handed out; it may come back once free."""
        capacity = size_class(len(obj))
        if capacity > self.retain:
            return
        with self._lock:
            lent = self._lent
            lent.append(_Lent(capacity, obj, self._clock()))
            held = self.held
            while held > self.retain:
                held -= lent.pop(0).capacity
        self._schedule()

    def trim(self) -> None:
        """Let go of every buffer lent ``linger`` seconds ago or more."""
        self._timer = None
        cutoff = self._clock() - self.linger
        with self._lock:
            self._lent = [entry for entry in self._lent if entry.since > cutoff]
        self._schedule()

    def clear(self) -> None:
        """Let go of every buffer (the server stops)."""
        with self._lock:
            self._lent = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        if self._timer is not None or not self._lent:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here: the next lend or trim on one schedules it
        oldest = self._lent[0].since
        delay = max(oldest + self.linger - self._clock(), 0.0)
        self._timer = loop.call_later(delay, self.trim)


def enabled() -> bool:
    """Whether buffers can be reused on this interpreter."""
    gil = getattr(sys, "_is_gil_enabled", None)
    return buffers.reshapeable() and (gil is None or gil())
