"""Operations: health, readiness, Prometheus metrics, request ids and access logs.

What a deployed server exposes under its operations prefix (``/_dataserve``
by default, ``OpsConfig.prefix`` / ``--ops-prefix``):

* ``GET {prefix}/health``: 200 while the process answers (liveness);
* ``GET {prefix}/ready``: 200 when ready, 503 while starting or draining;
* ``GET {prefix}/metrics``: Prometheus metrics (text or OpenMetrics);
* ``GET {prefix}/``: the console, a page with the server's status, live
  figures and a request console; ``GET {prefix}/stats``: its figures as JSON
  (``dataserve.ops.console``, ``dataserve.ops.stats``).

Request ids: each data request gets one, from its ``X-Request-ID`` header
when that is sane (1 to 128 visible ASCII characters) or generated; it is
sent back in the reply's ``X-Request-ID`` and is ``request_id()`` while the
handler runs.

Metrics hook for raw TCP listeners. Every transport records through the same
API, which works in one process and with several workers alike::

    from dataserve.ops import transport_metrics

    recorder = transport_metrics("native")  # once, at listener start
    recorder.connection_opened()  # in connection_made
    recorder.observe(resource, status, seconds, bytes_in, bytes_out)  # per request
    recorder.connection_closed()  # in connection_lost

``status`` is the HTTP-like code of the answer (200, 404 not handled, 500
handler error, 400/413/415 bad input). Resource labels are bounded:
only resources the handler answered get their own, at most
``max_resource_labels`` of them; everything else is counted as ``"other"``.
"""

from __future__ import annotations

from ..core.metrics import OTHER as OTHER
from ..core.metrics import Metrics as Metrics
from ..core.metrics import TransportMetrics as TransportMetrics
from ..core.metrics import metrics as metrics
from ..core.metrics import transport_metrics as transport_metrics
from .config import DEFAULT_OPS, OpsConfig
from .readiness import Readiness
from .requestid import new_request_id, request_id

__all__ = [
    "DEFAULT_OPS",
    "OTHER",
    "Metrics",
    "OpsConfig",
    "Readiness",
    "TransportMetrics",
    "metrics",
    "new_request_id",
    "request_id",
    "transport_metrics",
]
