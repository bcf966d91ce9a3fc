"""aiohttp's own server, access log off, on uvloop when it is installed."""

from __future__ import annotations

import asyncio

from aiohttp import web
from common import announce, best_loop, listen

xdata = [1, 2, 3]


async def put_xdata(request: web.Request) -> web.Response:
    payload = await request.json()
    return web.json_response(xdata + payload)


async def put_echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type="application/octet-stream")


async def main() -> None:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_put("/xdata", put_xdata)
    app.router.add_put("/echo", put_echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = listen()
    await web.SockSite(runner, sock).start()
    announce(sock)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if best_loop() == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main())
