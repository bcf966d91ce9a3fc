"""An example handler for the container: mount your own directory in its place.

``compose.yaml`` mounts this directory at ``/srv/handler`` (the container's
working directory) and serves ``handler:Handler``. ``/whoami`` says which
replica and process answered, which shows the load balancing at work.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from dataserve import HTTPDataHandler, request_id


class Handler(HTTPDataHandler):
    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/whoami":
            return {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "request_id": request_id(),
                "payload": payload,
            }
        if resource == "/echo":
            return payload
        return None
