"""A tcpy server and a pyts server for the memory tests, served by ``rawproto serve``.

Each answers ``pid`` (its process id, so the test can read its memory) and
``size`` (how many items the payload had: the answer itself is small).
"""

from __future__ import annotations

import os
from typing import Any

from rawproto.pyts import Request, Response, Server
from rawproto.tcpy import TCPHandler, TCPServer


class Pid(TCPHandler):
    def execute(self) -> dict[str, Any]:
        return self.success(pid=os.getpid())


class Size(TCPHandler):
    def __init__(self, data: Any) -> None:
        self.data = data

    def execute(self) -> dict[str, Any]:
        return self.success(items=len(self.data))


tcpy = TCPServer("127.0.0.1", 0, {"pid": Pid, "size": Size})

pyts = Server("127.0.0.1", 0)


def pid(request: Request, response: Response) -> None:
    response.setStatus(200, "OK")
    response.setBody(os.getpid())
    response.SendResponse()


def size(request: Request, response: Response) -> None:
    response.setStatus(200, "OK")
    response.setBody(len(request.Body))
    response.SendResponse()


pyts.routeHandler("/pid", pid)
pyts.routeHandler("/size", size)
