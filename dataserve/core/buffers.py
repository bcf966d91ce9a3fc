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

Elsewhere than CPython (or if ``ctypes`` is unavailable) the buffer is a
``bytearray``, converted with one copy at the end: correct, only slower.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["BodyBuffer"]


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


class BodyBuffer:
    """A body of ``size`` bytes being filled; ``finish()`` gives the ``bytes``.

    ``view`` is writable and covers the whole body; ``filled`` counts what
    has been written (by ``write`` or by the caller, who then calls
    ``advance``). ``remaining()`` is a view of the part not yet filled, the
    buffer to hand to a socket read.
    """

    __slots__ = ("_obj", "filled", "size", "view")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"a body size cannot be negative: {size}")
        self.size = size
        self.filled = 0
        self._obj: bytes | bytearray
        if _CPYTHON is not None and size:
            ctypes, new_bytes, offset = _CPYTHON
            obj: bytes = new_bytes(None, size)
            self._obj = obj
            self.view = memoryview((ctypes.c_char * size).from_address(id(obj) + offset)).cast("B")
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
        return obj if type(obj) is bytes else bytes(obj)

    def discard(self) -> None:
        """Give the memory back (the body will not be completed)."""
        self.view.release()
        self._obj = b""
