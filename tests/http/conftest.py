from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataserve import HTTPDataHandler, create_app
from dataserve.http.server import BackgroundServer


class EchoHandler(HTTPDataHandler):
    """Answers the payload back, with a few resources for the error paths."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/echo":
            return payload
        if resource == "/raise":
            raise RuntimeError("handler failure")
        if resource == "/set":
            return {1, 2}
        if resource == "/none-payload":
            return payload is None
        return None


@pytest.fixture
def echo_server() -> Iterator[BackgroundServer]:
    server = BackgroundServer(create_app(EchoHandler)).start()
    yield server
    server.stop(timeout=30)
