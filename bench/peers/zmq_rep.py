"""pyzmq REQ/REP echo server (PYTHONPATH = the pyzmq folder): ``zmq_rep.py [ipc://PATH]``.

It binds loopback TCP on a free port unless given an endpoint (``ipc://PATH``:
a Unix domain socket), and prints the endpoint it listens on.
"""

from __future__ import annotations

import sys

import zmq

ctx = zmq.Context()
sock = ctx.socket(zmq.REP)
sock.bind(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:*")
print(sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    sock.send(sock.recv(copy=False), copy=False)
