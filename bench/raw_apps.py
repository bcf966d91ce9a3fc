"""Our tcpy and pyts servers for the benchmarks (served with ``python -m rawproto serve``)."""

from __future__ import annotations

from typing import Any

from dataserve import inline
from rawproto.pyts import Request, Response, Server
from rawproto.tcpy import TCPHandler, TCPServer


class AdditionHandler(TCPHandler):
    """Seed 002's example command."""

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    def execute(self) -> dict[str, Any]:
        return self.success(solution=self.x + self.y)


tcpy_server = TCPServer(host="127.0.0.1", port=0, commands={"add": AdditionHandler})


def index(request: Request, resp: Response) -> None:
    """Seed 000's example route."""
    resp.setStatus(200, "OK")
    resp.setBody("<1>Index page</1>")
    resp.SendResponse()


pyts_app = Server("127.0.0.1", 0)
pyts_app.routeHandler("/", index)


@inline
def index_inline(request: Request, resp: Response) -> None:
    """Seed 000's example route, marked to run on the event loop (it never blocks)."""
    index(request, resp)


pyts_inline_app = Server("127.0.0.1", 0)
pyts_inline_app.routeHandler("/", index_inline)
