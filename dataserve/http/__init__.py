"""The HTTP side: the ASGI app on Starlette and its uvicorn protocol.

* ``app``: ``DataServeApp`` and its ``DataEndpoint`` (who may call, the
  exchange: decode, call the handler, encode; the answer), ``create_app``;
  ``reading``: a data request's decoder and body, within the limits;
* ``protocol``: the connection uvicorn runs, httptools' with the header
  limits and framing checks it lacks. Its parts: ``parsing`` (bytes to
  requests, with ``head`` and ``scope``), ``pipeline`` (requests answered in
  order), ``cycle`` (one request's exchange with the app) and ``body`` (its
  body), ``flow`` (reading paused, writes a peer never takes), ``tls``;
  ``transport``: one send per small response; ``connections``: the
  connection count for the metrics;
* ``server``: ``uvicorn_config`` and ``BackgroundServer``.

It imports the core and ``dataserve.ops``, never ``rawproto``.
"""

from __future__ import annotations

from .app import DataServeApp as DataServeApp
from .app import create_app as create_app
from .server import BackgroundServer as BackgroundServer

__all__ = ["BackgroundServer", "DataServeApp", "create_app"]
