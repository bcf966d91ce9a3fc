"""The raw TCP ceiling: a length-prefixed echo server on asyncio (uvloop when installed).

A message is a 4-byte big-endian length and that many bytes; the server sends
each message back as it is. One ``asyncio.Protocol`` per connection, nothing else.
"""

from __future__ import annotations

import asyncio

from common import serve_protocol


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data):
        buffer = self.buffer
        if not buffer and len(data) >= 4 and len(data) == 4 + int.from_bytes(data[:4], "big"):
            self.transport.write(data)  # exactly one whole message: send it back as it is
            return
        buffer += data
        out = []
        while len(buffer) >= 4:
            end = 4 + int.from_bytes(buffer[:4], "big")
            if len(buffer) < end:
                break
            with memoryview(buffer) as view:
                out.append(bytes(view[:end]))  # the one copy
            del buffer[:end]
        if out:
            self.transport.writelines(out)


if __name__ == "__main__":
    serve_protocol(Echo)
