"""tinyproto's API (seed 004) on the rawproto engine, wire-compatible with tinyproto 2.x and 3.0.

::

    from rawproto.tinyproto import TinyProtoServer, TinyProtoConnection, TinyProtoClient

Subclass ``TinyProtoConnection`` and override its hooks (``pre_loop``,
``transmission_received``, ``loop_pass``, ``post_loop``); subclass
``TinyProtoServer`` (``pre_loop``, ``loop_pass``, ``post_loop``,
``conn_init``, ``conn_shutdown``) or use ``TinyProtoClient``, as with the
original. What differs is underneath: the sockets are served by one asyncio
engine (``rawproto.engine``) instead of a select loop per connection.

How the hooks run, and why it matches the original:

* Each connection's hooks run on that connection's own thread, one at a time,
  as in the original, so a hook may block, and ``transmit`` (blocking until
  the peer accepted the message and it was handed to the kernel) may be
  called from any hook. The thread starts after the handshake is under way
  and after the server's ``conn_init``.
* A message is handed to ``transmission_received`` as soon as it has
  arrived: the thread waits on a queue, it does not poll. ``loop_pass`` is
  called on a timer, every ``loop_pass_interval`` seconds (0.1 s, the
  original's select timeout).
* The server's hooks (``pre_loop``, ``loop_pass``, ``conn_init``,
  ``conn_shutdown``, ``post_loop``) run on the thread that called
  ``start()``. ``active_connections`` holds connection objects: iterate it,
  index it (``connect_to`` returns the index), take ``len`` of it; its
  ``items()``/``values()``/``keys()`` give the original's dictionary view by
  connection id. ``conn_init``/``conn_shutdown`` may take ``(conn_o)`` or
  ``(conn_id, conn_o)``.
* Setting ``shutdown = True`` on a connection closes it (after ``post_loop``);
  on a server, ends ``start()``; on a client, ends its ``start()`` loop.
* Ending ``start()`` (``shutdown``, or SIGTERM in the main thread) is
  graceful: the listeners close, each connection refuses messages announced
  from then on (0xfc: the sender's ``transmit`` raises ``TinyProtoError``),
  hands every message it had accepted to its hooks, lets them finish (their
  ``transmit`` calls too), runs ``post_loop`` and closes; connections still
  busy after ``limits.shutdown_timeout`` are closed.
* ``tls=TLSConfig(cert, key, client_ca)`` serves TLS; the client takes
  ``tls=True``, ``ca_file``, ``cert`` or ``verify=False``. The wire format
  has no token: a server bound beyond loopback without client certificates
  logs a warning (see ``docs/security.md``).
* Messages are ``bytearray`` as in the original, up to ``MSG_MAX_SIZE``
  (0xf0ffffff) by default; ``max_message_size`` lowers the limit, and a
  larger announced message is refused with 0xfc before any of it is read.
  A refused ``transmit`` raises ``TinyProtoError``; a closed connection makes
  ``transmit`` set ``shutdown`` instead, as the original does.
* ``socket_o`` answers the socket calls programs make (``settimeout``,
  ``gettimeout``, ``getpeername``, ``getsockname``, ``fileno``,
  ``setsockopt``, ``getsockopt``...). Its timeout acts as a blocking
  socket's on ``receive``/``transmit``: past it with nothing moving, the
  connection's ``shutdown`` becomes true, as in the original. A client's
  connections start with the client's timeout (5 s), a server's with none.
* ``connection_limit`` (``None``: unlimited, as in the original): a
  connection above it is answered 0xfe instead of the handshake and closed.
  The engine's own ``limits.max_connections`` applies as well.
* Unlike the original, ``add_addr`` accepts port 0 (a free port; the bound
  ones are in ``ports`` once ``pre_loop`` runs, and logged at INFO on the
  ``rawproto.tinyproto`` logger), IPv6 addresses, and a hook that raises is
  logged and closes its connection instead of leaving a dead thread behind.

Plugins (``TinyProtoPlugin``: ``msg_transmit``, ``msg_receive``) transform
each message on the way out (in registration order) and in (in reverse).

The modules: ``connection`` (``TinyProtoConnection`` and its hook thread),
``bridge`` (how that thread and the event loop talk), ``sockview``
(``socket_o`` and its timeout), ``session`` (the same
connection on the engine), ``endpoint`` (what server and client share),
``server`` and ``client``. The wire is ``rawproto.proto.tinyproto``.
"""

from __future__ import annotations

from ..proto.tinyproto import MSG_MAX_SIZE as MSG_MAX_SIZE
from ..proto.tinyproto import SC_CONFLICT as SC_CONFLICT
from ..proto.tinyproto import SC_CONLIMIT as SC_CONLIMIT
from ..proto.tinyproto import SC_GENERIC_ERROR as SC_GENERIC_ERROR
from ..proto.tinyproto import SC_OK as SC_OK
from ..proto.tinyproto import SC_REFUSED as SC_REFUSED
from .bridge import TinyProtoError as TinyProtoError
from .client import TinyProtoClient as TinyProtoClient
from .connection import TinyProtoConnection as TinyProtoConnection
from .connection import TinyProtoPlugin as TinyProtoPlugin
from .endpoint import TINYPROTO_LIMITS as TINYPROTO_LIMITS
from .endpoint import TinyProtoConnectionDetails as TinyProtoConnectionDetails
from .server import TinyProtoServer as TinyProtoServer

__all__ = [
    "MSG_MAX_SIZE",
    "SC_CONFLICT",
    "SC_CONLIMIT",
    "SC_GENERIC_ERROR",
    "SC_OK",
    "SC_REFUSED",
    "TinyProtoClient",
    "TinyProtoConnection",
    "TinyProtoConnectionDetails",
    "TinyProtoError",
    "TinyProtoPlugin",
    "TinyProtoServer",
]
