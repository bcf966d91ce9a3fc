"""Starlette, as its documentation writes it: a route per resource, under uvicorn."""

from __future__ import annotations

import uvicorn
from common import announce, best_loop, listen
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

xdata = [1, 2, 3]


async def put_xdata(request: Request) -> Response:
    payload = await request.json()
    return JSONResponse(xdata + payload)


async def put_echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


app = Starlette(
    routes=[
        Route("/xdata", put_xdata, methods=["PUT", "POST"]),
        Route("/echo", put_echo, methods=["PUT", "POST"]),
    ]
)

if __name__ == "__main__":
    sock = listen()
    announce(sock)
    config = uvicorn.Config(
        app, http="httptools", loop=best_loop(), access_log=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[sock])
