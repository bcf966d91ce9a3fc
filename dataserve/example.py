"""Seed 001's example handler: what ``dataserve serve`` serves with no argument.

``PUT /xdata [4, 5, 6]`` answers ``[1, 2, 3, 4, 5, 6]``; ``PUT /ydata``
answers ``2``; ``PUT /echo`` answers its payload as it came (the README's
curl lines use it); any other resource is not handled (404).
"""

from __future__ import annotations

from typing import Any

from .core.handler import HTTPDataHandler

__all__ = ["ExampleHandler"]

xdata = [1, 2, 3]


class ExampleHandler(HTTPDataHandler):
    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/xdata":
            return xdata + (payload if isinstance(payload, list) else [payload])
        elif resource == "/ydata":
            return 2
        elif resource == "/echo":
            return payload
        return None
