"""A tinyproto echo server: ``tinyproto_echo.py original`` or ``tinyproto_echo.py ours``.

``original`` imports tinyproto 2.0.1 (``PYTHONPATH`` = its folder), ``ours``
this project's facade, ``rawproto.tinyproto``. The code is the seed's usage:
a ``TinyProtoConnection`` subclass whose ``transmission_received`` transmits
the message back.
"""

from __future__ import annotations

import socket
import sys

if sys.argv[1] == "ours":
    from rawproto.tinyproto import TinyProtoConnection, TinyProtoServer
else:
    from tinyproto import TinyProtoConnection, TinyProtoServer


class Echo(TinyProtoConnection):
    def transmission_received(self, msg):
        self.transmit(msg)


def free_port() -> int:
    # tinyproto 2.0.1 refuses port 0; the race with another binder is harmless here.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server(TinyProtoServer):
    def pre_loop(self):
        ports = getattr(self, "ports", None) or [self.listen_addrs[0][1]]
        print(f"tcp://127.0.0.1:{ports[0]}", flush=True)


if __name__ == "__main__":
    server = Server()
    server.set_conn_handler(Echo)
    server.add_addr("127.0.0.1", 0 if sys.argv[1] == "ours" else free_port())
    server.start()
