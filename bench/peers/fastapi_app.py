"""FastAPI, as its tutorial writes it: a typed body parameter, under uvicorn."""

from __future__ import annotations

import uvicorn
from common import announce, best_loop, listen
from fastapi import Body, FastAPI

xdata = [1, 2, 3]

app = FastAPI()


@app.put("/xdata")
async def put_xdata(payload: list[int] = Body()):  # noqa: B008 - FastAPI's idiom
    return xdata + payload


if __name__ == "__main__":
    sock = listen()
    announce(sock)
    config = uvicorn.Config(
        app, http="httptools", loop=best_loop(), access_log=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[sock])
