"""The floor for a tcpy call on asyncio: a bare protocol on uvloop, no framework.

One ``asyncio.Protocol`` per connection: each message (a 4-byte big-endian
length, then a msgpack map ``{"cmd": "add", "x": X, "y": Y}``) is answered
``{"success": True, "solution": X + Y}`` on the loop, and the connection stays
open for the next one until the client closes it. No limits, deadlines,
command table, handler thread or objects per request: what any asyncio server
answering tcpy's wire must pay at least.
"""

from __future__ import annotations

import asyncio

import msgpack
from common import serve_protocol


class Calls(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        buffer = self.buffer + data
        while len(buffer) >= 4:
            end = 4 + int.from_bytes(buffer[:4], "big")
            if len(buffer) < end:
                break
            request = msgpack.unpackb(buffer[4:end])
            reply = msgpack.packb({"success": True, "solution": request["x"] + request["y"]})
            self.transport.write(len(reply).to_bytes(4, "big") + reply)
            buffer = buffer[end:]
        self.buffer = buffer


if __name__ == "__main__":
    serve_protocol(Calls)
