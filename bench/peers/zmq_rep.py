"""pyzmq REQ/REP echo server (PYTHONPATH = the pyzmq folder)."""

from __future__ import annotations

import zmq

ctx = zmq.Context()
sock = ctx.socket(zmq.REP)
sock.bind("tcp://127.0.0.1:*")
print(sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    sock.send(sock.recv(copy=False), copy=False)
