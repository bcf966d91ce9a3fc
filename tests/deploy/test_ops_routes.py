"""Health, readiness and metrics routes under a configurable prefix, never the handler's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware

from dataserve import create_app
from dataserve.ops import OpsConfig

from .handlers import Probe


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    Probe.calls.clear()


def test_health_ready_and_metrics_answer_under_the_default_prefix(serve: Any) -> None:
    server = serve(create_app(Probe))
    with httpx.Client(base_url=server.url) as http:
        r = http.get("/_dataserve/health")
        assert (r.status_code, r.text) == (200, "ok\n")
        r = http.get("/_dataserve/ready")
        assert (r.status_code, r.text) == (200, "ready\n")
        assert http.head("/_dataserve/health").status_code == 200
        http.put("/echo", json=[1])
        r = http.get("/_dataserve/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "dataserve_requests_total{" in r.text
        # OpenMetrics for a scraper that asks for it
        r = http.get(
            "/_dataserve/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert r.text.endswith("# EOF\n")
    assert Probe.calls == ["/echo"]


def test_ready_is_503_while_starting_and_while_draining(serve: Any) -> None:
    app = create_app(Probe)
    server = serve(app)
    with httpx.Client(base_url=server.url) as http:
        app.readiness.hold("warm-up")  # e.g. a handler loading its model
        r = http.get("/_dataserve/ready")
        assert (r.status_code, r.text) == (503, "starting: warm-up\n")
        assert http.get("/_dataserve/health").status_code == 200  # alive all the same
        app.readiness.release("warm-up")
        assert http.get("/_dataserve/ready").status_code == 200
        app.readiness.drain()
        r = http.get("/_dataserve/ready")
        assert (r.status_code, r.text) == (503, "draining\n")
        assert http.get("/_dataserve/health").status_code == 200
        # draining still serves what arrives
        assert http.put("/echo", json=2).json() == 2


def test_an_app_is_starting_until_its_lifespan_has_run() -> None:
    app = create_app(Probe)
    assert app.readiness.state == "starting: startup"
    assert not app.readiness.ready


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("PUT", "/_dataserve/health", 405),
        ("POST", "/_dataserve/metrics", 405),
        ("DELETE", "/_dataserve/ready", 405),
        ("PUT", "/_dataserve/anything", 404),
        ("GET", "/_dataserve/anything/deeper", 404),
        ("PUT", "/_dataserve", 405),  # the console's page
        ("PUT", "/_dataserve/", 405),
        ("POST", "/_dataserve/stats", 405),
    ],
)
def test_paths_under_the_prefix_never_reach_the_handler(
    serve: Any, method: str, path: str, status: int
) -> None:
    server = serve(create_app(Probe))
    r = httpx.request(method, server.url + path, json="x")
    assert r.status_code == status, r.text
    if status == 405:
        assert r.headers["allow"] == "GET, HEAD"
        assert "use GET" in r.text
    else:
        assert "/_dataserve/health, /_dataserve/ready, /_dataserve/metrics" in r.text
    assert Probe.calls == []


def test_the_prefix_is_one_path_segment(serve: Any) -> None:
    server = serve(create_app(Probe))
    r = httpx.put(server.url + "/_dataservex", json=1)
    assert r.text == "ok"  # a resource of the handler's, not an operations route
    assert Probe.calls == ["/_dataservex"]


def test_a_configured_prefix_moves_the_routes_and_frees_the_default(serve: Any) -> None:
    server = serve(create_app(Probe, ops=OpsConfig(prefix="/ops/v1")))
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/ops/v1/health").text == "ok\n"
        assert http.get("/ops/v1/ready").status_code == 200
        assert http.get("/ops/v1/metrics").status_code == 200
        assert http.put("/ops/v1/health").status_code == 405
        # the default path is now an ordinary resource
        assert http.put("/_dataserve/health", json=1).text == "ok"
    assert Probe.calls == ["/_dataserve/health"]


def test_an_empty_prefix_turns_the_routes_off(serve: Any) -> None:
    server = serve(create_app(Probe, ops=OpsConfig(prefix="")))
    with httpx.Client(base_url=server.url) as http:
        r = http.get("/_dataserve/health")
        assert r.status_code == 405  # the data endpoint: GET is not a data method
        assert http.put("/_dataserve/health", json=1).text == "ok"


def test_metrics_off_means_no_metrics_route(serve: Any) -> None:
    server = serve(create_app(Probe, ops=OpsConfig(metrics=False)))
    r = httpx.get(server.url + "/_dataserve/metrics")
    assert r.status_code == 404
    assert r.text.endswith(
        "these are: /_dataserve/health, /_dataserve/ready, /_dataserve/, /_dataserve/stats\n"
    )


def test_routes_work_behind_user_middleware(serve: Any) -> None:
    seen: list[str] = []

    class Record(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            seen.append(request.url.path)
            return await call_next(request)

    app = create_app(Probe)
    app.user_middleware.append(Middleware(Record))
    server = serve(app)
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/_dataserve/health").status_code == 200
        r = http.put("/echo", json=5, headers={"x-request-id": "mw-1"})
        assert r.json() == 5 and r.headers["x-request-id"] == "mw-1"
    assert seen == ["/_dataserve/health", "/echo"]


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/_x/", "no trailing '/'"),
        ("_x", "ops prefix must be a path"),
        ("/a b", "ops prefix must be a path"),
        ("/{x}", "ops prefix must be a path"),
        ("/", "ops prefix must be a path"),
    ],
)
def test_a_bad_prefix_is_refused_with_a_clear_message(prefix: str, message: str) -> None:
    with pytest.raises(ValueError, match="ops prefix") as info:
        OpsConfig(prefix=prefix)
    assert message in str(info.value)


def test_bad_ops_values_are_refused() -> None:
    with pytest.raises(ValueError, match="log format must be 'text' or 'json'"):
        OpsConfig(log_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_resource_labels must be 0 or more"):
        OpsConfig(max_resource_labels=-1)
    with pytest.raises(ValueError, match="drain_delay must be 0 or more"):
        OpsConfig(drain_delay=-1)
