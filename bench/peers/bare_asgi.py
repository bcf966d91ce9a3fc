"""The HTTP ceiling: a bare ASGI callable under uvicorn (httptools, uvloop), access log off.

It does the scenario's work and nothing else: ``PUT /xdata`` appends the JSON
list to ``[1, 2, 3]``; ``PUT /echo`` sends the body back.
"""

from __future__ import annotations

import json

import uvicorn
from common import announce, best_loop, listen

try:
    import orjson

    loads, dumps = orjson.loads, orjson.dumps
except ImportError:  # pragma: no cover
    loads, dumps = json.loads, lambda v: json.dumps(v).encode()

xdata = [1, 2, 3]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    path = scope["path"]
    if path == "/xdata":
        status, ctype, data = 200, b"application/json", dumps(xdata + loads(body))
    elif path == "/echo":
        status, ctype, data = 200, b"application/octet-stream", body
    else:
        status, ctype, data = 404, b"text/plain", b"not found"
    headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    sock = listen()
    announce(sock)
    config = uvicorn.Config(
        app,
        http="httptools",
        loop=best_loop(),
        lifespan="off",
        access_log=False,
        log_level="warning",
        limit_concurrency=None,
    )
    uvicorn.Server(config).run(sockets=[sock])
