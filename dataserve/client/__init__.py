"""HTTP clients on httpx: ``HTTPDataClient`` (blocking) and ``AsyncHTTPDataClient``.

Both keep one connection pool across calls and share everything but the I/O:

* ``exchange``: the I/O-free half of a call (the request a payload makes, what
  a reply means, httpx's exceptions -> the core's);
* ``transfer``: the bytes in motion (a body in pieces, a file streamed out,
  the progress meter, a whole reply gathered, a reply streamed ``into`` a file);
* ``base``: the URL and httpx options both clients are built from;
* ``sync`` and ``aio``: the two clients, which differ only where bytes move:
  iterating, ``await``, and (in the async client) file reads and writes done
  off the event loop.
"""

from __future__ import annotations

from .aio import AsyncHTTPDataClient as AsyncHTTPDataClient
from .base import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from .sync import HTTPDataClient as HTTPDataClient
from .transfer import Progress as Progress
from .transfer import Writable as Writable

__all__ = ["DEFAULT_TIMEOUT", "AsyncHTTPDataClient", "HTTPDataClient", "Progress", "Writable"]
