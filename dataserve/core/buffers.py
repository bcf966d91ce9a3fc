"""One buffer per body: a ``bytes`` object filled in place as the bytes arrive.

A body whose length is known is read straight into a buffer of that size and
handed on as the one object the handler gets (``bytes``, as the codec
promises for ``application/octet-stream``). Collecting pieces and joining them
costs a second copy of the body and twice its memory; filling a
``bytearray`` and converting it costs the same. CPython's own
``BufferedReader.read(n)`` avoids both by allocating the result with
``PyBytes_FromStringAndSize(NULL, n)`` and reading into it before anyone else
can see it; ``BodyBuffer`` does the same from Python, through ``ctypes``:

* the ``bytes`` object is allocated uninitialised and referenced by nobody
  else until ``finish()`` hands it out;
* a writable ``memoryview`` over its storage is what the socket reads fill
  (``recv_into``, ``BufferedProtocol.get_buffer``) or pieces are copied into;
* ``finish()`` releases that view first, so nothing can write to the object
  once it is shared (and its hash, never computed before, is computed from
  the final bytes).

The buffer is plain memory from the allocator, 4 KiB pages. Transparent huge
pages (``madvise(MADV_HUGEPAGE)``) were tried and dropped: a fresh 64 MiB
buffer is then 32 page faults instead of 16,384, but the kernel has few warm
huge pages to give, and on a VM that hands free memory back to its host (a
balloon's free page reporting) each first touch of a cold one is a fault on
the host too. Measured on such a VM, a 512 MiB echo cost the server 0.25 s of
CPU with warm huge pages, 1.3 s with cold ones, and 0.35-0.45 s every time
with 4 KiB pages (as the original dataserve's ``read(length)`` pays); at
64 MiB huge pages made rounds range from 389 to 1,543 MB/s, 4 KiB pages from
1,229 to 1,539.

Page faults still cost more than the copy into the page: a server keeps
the buffers of large bodies for the next one (``buffer_cache``), which
``reshape`` makes possible by giving a reused ``bytes`` object its new
length.

Elsewhere than CPython (or if ``ctypes`` is unavailable) the buffer is a
``bytearray``, converted with one copy at the end: correct, only slower.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

__all__ = ["BodyBuffer", "Recycler", "new_bytes", "reshape", "reshapeable", "writable_view"]

#: Bodies this large or larger may use a ``BufferCache`` (its ``CACHE_FROM``).
CACHE_FROM = 1 << 20


def _setup() -> tuple[Any, Any, int] | None:
    if sys.implementation.name != "cpython":
        return None
    try:
        import ctypes
    except ImportError:  # pragma: no cover - CPython built without ctypes
        return None
    new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
    new_bytes.restype = ctypes.py_object
    new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    # A bytes object's storage starts at the end of its fixed part; the
    # trailing NUL byte is counted in __basicsize__.
    return ctypes, new_bytes, bytes.__basicsize__ - 1


_CPYTHON = _setup()

# Where a bytes object keeps its length and its cached hash: CPython's
# PyBytesObject is a PyVarObject (ob_size right after the object header)
# followed by ob_shash and the storage. Checked on a probe before use.
_SIZE_AT = object.__basicsize__
_HASH_AT = bytes.__basicsize__ - 1 - 8


def new_bytes(size: int) -> bytes:
    """A ``bytes`` object of ``size`` bytes, not initialised, referenced by nobody else."""
    if _CPYTHON is None:
        return bytes(size)
    obj: bytes = _CPYTHON[1](None, size)
    return obj


def writable_view(obj: bytes) -> memoryview:
    """A writable view of a ``bytes`` object's storage (one nobody else sees yet)."""
    assert _CPYTHON is not None
    ctypes, _, offset = _CPYTHON
    return memoryview((ctypes.c_char * len(obj)).from_address(id(obj) + offset)).cast("B")


def reshape(obj: bytes, size: int) -> None:
    """Make ``obj``, referenced by nobody else, ``size`` bytes long (at most the
    size it was made with) and forget its hash: it is about to be refilled."""
    assert _CPYTHON is not None
    ctypes, _, offset = _CPYTHON
    base = id(obj)
    ctypes.c_ssize_t.from_address(base + _SIZE_AT).value = size
    ctypes.c_ssize_t.from_address(base + _HASH_AT).value = -1
    ctypes.c_char.from_address(base + offset + size).value = b"\0"


def _probe() -> bool:
    if _CPYTHON is None or sys.getsizeof(b"") != bytes.__basicsize__:
        return False
    obj = new_bytes(16)
    writable_view(obj)[:] = b"0123456789abcdef"
    if hash(obj) != hash(b"0123456789abcdef"):
        return False
    reshape(obj, 8)
    return len(obj) == 8 and obj == b"01234567" and hash(obj) == hash(b"01234567")


_RESHAPEABLE = _probe()


def reshapeable() -> bool:
    """Whether ``reshape`` works here (CPython's layout, checked on a probe)."""
    return _RESHAPEABLE


class Recycler(Protocol):
    """Where large bodies' buffers come from and go back to (``buffer_cache.BufferCache``)."""

    def take(self, size: int) -> bytes: ...

    def lend(self, obj: bytes) -> None: ...


class BodyBuffer:
    """A body of ``size`` bytes being filled; ``finish()`` gives the ``bytes``.

    ``view`` is writable and covers the whole body; ``filled`` counts what
    has been written (by ``write`` or by the caller, who then calls
    ``advance``). ``remaining()`` is a view of the part not yet filled, the
    buffer to hand to a socket read.

    With a ``cache`` (a ``Recycler``: ``dataserve.core.buffer_cache``), a
    body of ``CACHE_FROM`` bytes or more is read into a buffer the cache
    gives, perhaps one a body before it had and nobody holds any more, and
    ``finish()`` lends the body to it.
    """

    __slots__ = ("_cache", "_obj", "filled", "size", "view")

    def __init__(self, size: int, cache: Recycler | None = None) -> None:
        if size < 0:
            raise ValueError(f"a body size cannot be negative: {size}")
        self.size = size
        self.filled = 0
        self._obj: bytes | bytearray
        self._cache = cache if size >= CACHE_FROM else None
        if self._cache is not None:
            obj = self._obj = self._cache.take(size)
            self.view = writable_view(obj)
        elif _CPYTHON is not None and size:
            obj = self._obj = new_bytes(size)
            self.view = writable_view(obj)
        else:
            self._obj = bytearray(size)
            self.view = memoryview(self._obj)

    def remaining(self) -> memoryview:
        return self.view[self.filled :]

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Copy ``data`` in (up to what is left); return how much was taken."""
        n = min(len(data), self.size - self.filled)
        self.view[self.filled : self.filled + n] = data[:n] if n < len(data) else data
        self.filled += n
        return n

    def advance(self, n: int) -> None:
        """``n`` more bytes were written into ``remaining()`` by the caller."""
        self.filled += n

    @property
    def complete(self) -> bool:
        return self.filled >= self.size

    def finish(self) -> bytes:
        """The body, once complete; the buffer can no longer be written."""
        if self.filled != self.size:
            raise ValueError(f"body incomplete: {self.filled} of {self.size} bytes")
        self.view.release()
        obj = self._obj
        self._obj = b""
        if type(obj) is not bytes:
            return bytes(obj)
        if self._cache is not None:
            self._cache.lend(obj)
        return obj

    def discard(self) -> None:
        """Give the memory back (the body will not be completed)."""
        self.view.release()
        self._obj = b""
