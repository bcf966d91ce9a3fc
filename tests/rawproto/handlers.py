"""Handlers the subprocess tests import by name."""

from __future__ import annotations

import itertools
import os
from typing import Any

from dataserve import HTTPDataHandler


class Counter(HTTPDataHandler):
    """Counts calls on one instance: shows which transports share it."""

    def __init__(self) -> None:
        self.calls = itertools.count(1)

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/count":
            return {"call": next(self.calls), "payload": payload}
        return None


class Pid(HTTPDataHandler):
    """Answers with the worker's process id: shows which process served a request."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/pid":
            return os.getpid()
        return None
