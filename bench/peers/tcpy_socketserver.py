"""tcpy's server behaviour: a threaded socketserver, one request per connection.

A message is a 4-byte big-endian length then a msgpack map; the request
``{"cmd": "add", "x": X, "y": Y}`` is answered ``{"success": True, "solution": X + Y}``
and the connection closes, as the original tcpy server does.
"""

from __future__ import annotations

import socketserver
import struct

import msgpack


def recv_exactly(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        (length,) = struct.unpack(">I", recv_exactly(self.request, 4))
        request = msgpack.unpackb(recv_exactly(self.request, length))
        reply = msgpack.packb({"success": True, "solution": request["x"] + request["y"]})
        self.request.sendall(struct.pack(">I", len(reply)) + reply)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


if __name__ == "__main__":
    with Server(("127.0.0.1", 0), Handler) as server:
        print(f"tcp://127.0.0.1:{server.server_address[1]}", flush=True)
        server.serve_forever()
