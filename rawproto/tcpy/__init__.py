"""tcpy's API (seed 002) on rawproto: ``TCPServer``, ``TCPHandler``, ``TCPClient``.

::

    from rawproto.tcpy import TCPServer, TCPHandler, TCPClient

    class AdditionHandler(TCPHandler):
        def __init__(self, x, y):
            self.x = x
            self.y = y

        def execute(self):
            return self.success(solution=self.x + self.y)

    server = TCPServer()
    server.commands = {"add": AdditionHandler}
    server.listen()

    print(TCPClient().execute(cmd="add", x=1, y=2))   # {'success': True, 'solution': 3}

The wire is tcpy's, byte for byte (``rawproto.proto.tcpy``), so clients and
servers of the original interoperate with these. Beyond the original:

* one connection carries any number of requests (the original client's
  one-connection-per-request works too);
* an unknown command, missing or unexpected parameters and a raising handler
  get ``{"error": True, "message": ...}`` replies that say what was wrong,
  and the connection stays usable; a message that is not msgpack, or a
  request that is not a map, gets an error reply and the connection closes;
* every limit of ``dataserve.core.limits.Limits`` applies (frame size,
  msgpack container length and nesting, timeouts, connection count); a
  handler that takes longer than ``handler_timeout`` gets the reply
  ``{"error": True, "message": "command 'x' did not answer within N s"}``
  (its thread runs on; its ``send``/``recv`` raise ``ConnectionClosed``);
* ``listen()`` stops cleanly on Ctrl-C or SIGTERM, letting running handlers
  finish; one still running when ``shutdown_timeout`` ends gets an error
  reply saying the server shut down;
* ``tls=TLSConfig(...)`` serves TLS, and the client takes ``tls=True``,
  ``ca_file``, ``cert`` or ``verify=False``. tcpy's wire has no token: a
  server bound beyond loopback without client certificates logs a warning.

The modules: ``handler`` (``TCPHandler``), ``server`` (``TCPServer`` and its
engine session) and ``client`` (``TCPClient``, on a blocking socket). The
wire is ``rawproto.proto.tcpy``.
"""

from __future__ import annotations

from ..proto.tcpy import DEFAULT_PORT as DEFAULT_PORT
from .client import TCPClient as TCPClient
from .handler import TCPHandler as TCPHandler
from .server import TCPServer as TCPServer

__all__ = ["DEFAULT_PORT", "TCPClient", "TCPHandler", "TCPServer"]
