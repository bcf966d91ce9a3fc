"""The floor for a pyts call on asyncio: a bare protocol on uvloop, no framework.

One ``asyncio.Protocol`` per connection: it parses the request document once
it is whole, answers seed 000's index route as the original server does (the
same document), and closes. No limits, deadlines, routing table, handler
thread or objects per request: what any asyncio server answering pyts's wire
must pay at least, against the original's blocking one-connection-at-a-time
loop.
"""

from __future__ import annotations

import asyncio
import json

from common import serve_protocol

OK = {"VERSION": "PYTS/1.0.0", "type": "RESPONSE", "STATUS-TEXT": "OK", "STATUS-CODE": 200}


class Call(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.data = b""

    def data_received(self, data):
        self.data += data
        try:
            request = json.loads(self.data)
        except ValueError:
            return  # not whole yet
        endpoint = request["headers"]["ENDPOINT"]
        if endpoint == "/":
            document = {"headers": {**OK, "STATUS": "200 OK"}, "body": "<1>Index page</1>"}
        else:
            headers = {**OK, "STATUS-TEXT": "Not Found", "STATUS-CODE": 404}
            document = {"headers": {**headers, "STATUS": "404 Not Found"}, "body": endpoint}
        self.transport.write(json.dumps(document).encode())
        self.transport.close()


if __name__ == "__main__":
    serve_protocol(Call)
