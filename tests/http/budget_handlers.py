"""A handler for the memory tests' server process (``tests.http.budget_handlers:Summary``).

It answers a summary of the payload, never the payload itself, so the
server's memory is the body's and the decoded value's only.
"""

from __future__ import annotations

import os
from typing import Any

from dataserve import HTTPDataHandler


class Summary(HTTPDataHandler):
    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/pid":
            return os.getpid()
        return {"type": type(payload).__name__, "len": len(payload)}
