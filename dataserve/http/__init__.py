"""The HTTP side: the ASGI app on Starlette and its uvicorn protocol.

* ``app``: ``DataServeApp`` and its ``DataEndpoint`` (decode, call the
  handler, encode), ``create_app``;
* ``protocol``: uvicorn's httptools protocol with the header limits and
  framing checks it lacks; ``transport``: one send per small response;
  ``connections``: the connection count for the metrics;
* ``server``: ``uvicorn_config`` and ``BackgroundServer``.

It imports the core and ``dataserve.ops``, never ``rawproto``.
"""

from __future__ import annotations

from .app import DataServeApp as DataServeApp
from .app import create_app as create_app
from .server import BackgroundServer as BackgroundServer

__all__ = ["BackgroundServer", "DataServeApp", "create_app"]
