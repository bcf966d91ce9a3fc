"""dataserve.app: the app's import path of earlier releases, kept for users."""

from __future__ import annotations

from typing import Any

import httpx

import dataserve.app as old
from dataserve import http, workers
from dataserve.http.server import BackgroundServer


def test_the_old_names_are_the_new_objects() -> None:
    assert old.create_app is http.app.create_app
    assert old.DataServeApp is http.app.DataServeApp
    assert old.DataEndpoint is http.app.DataEndpoint
    assert old.from_env is workers.from_env
    assert sorted(old.__all__) == ["DataEndpoint", "DataServeApp", "create_app", "from_env"]


def test_an_app_made_through_the_old_path_serves() -> None:
    def double(resource: str, payload: Any) -> Any:
        return payload * 2

    with BackgroundServer(old.create_app(double)) as server:
        assert httpx.put(f"{server.url}/x", json=21, timeout=10).json() == 42
