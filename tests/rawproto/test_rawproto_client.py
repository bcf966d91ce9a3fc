"""rawproto.client: the clients' import path of earlier releases, kept for users."""

from __future__ import annotations

from typing import Any

import rawproto.client as old
from rawproto import BackgroundRawServer
from rawproto.native import client as native


def test_the_old_names_are_the_new_objects() -> None:
    assert old.RawDataClient is native.RawDataClient
    assert old.AsyncRawDataClient is native.AsyncRawDataClient
    assert old.DEFAULT_TIMEOUT == native.DEFAULT_TIMEOUT
    assert sorted(old.__all__) == ["AsyncRawDataClient", "DEFAULT_TIMEOUT", "RawDataClient"]


def test_a_client_imported_from_the_old_path_talks_to_a_server() -> None:
    def echo(resource: str, payload: Any) -> Any:
        return [resource, payload]

    with BackgroundRawServer(echo) as server, old.RawDataClient(server.port) as client:
        assert client.send("/r", {"k": 1}) == ["/r", {"k": 1}]
