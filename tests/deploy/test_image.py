"""The image and compose files, checked without a Docker engine.

The Dockerfile's own entry point and health check run here as real
processes; compose.yaml, the nginx template and the Dockerfile agree with
each other. (hadolint and the Compose schema run in .ci/deploy-checks.)
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from dataserve.cli import _parser
from rawproto import RawDataClient
from tests.conftest import ROOT, ServerProcess

from .helpers import HANDLER_DIR, all_started, compose, template_placeholders

DOCKERFILE = ROOT / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def instruction(name: str) -> list[str]:
    return [args for word, args in instructions() if word == name]


def entrypoint() -> list[str]:
    (args,) = instruction("ENTRYPOINT")
    value: list[str] = json.loads(args)
    return value


def healthcheck() -> list[str]:
    (args,) = instruction("HEALTHCHECK")
    value: list[str] = json.loads(args[args.index("CMD ") + 4 :])
    return value


def on_loopback(argv: list[str], port: int) -> list[str]:
    """``argv`` with the container's ports (8000, and 9000 made 0) and host made local."""
    swapped = {"8000": str(port), "9000": "0", "0.0.0.0": "127.0.0.1"}
    return [swapped.get(a, a.replace(":8000/", f":{port}/")) for a in argv]


def test_the_image_runs_as_a_non_root_user_from_the_handler_directory() -> None:
    stages = instruction("FROM")
    assert len(stages) == 2 and all("-slim" in s for s in stages)
    assert instruction("USER") == ["10001"]
    assert instruction("WORKDIR")[-1] == "/srv/handler"
    assert instruction("EXPOSE") == ["8000 9000"]
    assert instruction("STOPSIGNAL") == ["SIGTERM"]
    assert entrypoint()[:2] == ["dataserve", "serve"]
    assert "--access-log" in entrypoint()  # on in the image


def test_the_compose_service_serves_and_its_health_check_passes_then_fails_after_stop() -> None:
    # The image's entry point with the service's command, as compose runs
    # them: the handler from DATASERVE_HANDLER, the working directory where
    # compose mounts the handler's code.
    app: Any = compose()["services"]["dataserve"]  # type: ignore[index]
    command = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", a) for a in app["command"]]
    argv = on_loopback([*entrypoint(), *command], 0)
    argv[0:1] = [str(Path(sys.executable).with_name("dataserve"))]
    server = ServerProcess(argv, cwd=HANDLER_DIR, env={"DATASERVE_HANDLER": "handler:Handler"})
    check = on_loopback(healthcheck(), server.port)
    check[0:1] = [sys.executable]
    try:
        assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
        r = httpx.put(f"{server.url}/whoami", json={"a": 1})
        assert r.status_code == 200 and r.json()["payload"] == {"a": 1}
        # and the native TCP port, on every worker
        tcp = re.search(r"tcp://127\.0\.0\.1:(\d+)", server.line(1))
        assert tcp, server.lines
        assert all_started(server, int(command[command.index("--workers") + 1]))
        with RawDataClient(int(tcp.group(1))) as raw:
            assert raw.send("/whoami", [2])["payload"] == [2]
    finally:
        server.proc.send_signal(signal.SIGTERM)  # `docker stop`
        assert server.proc.wait(30) == 0
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0
    # --access-log is on in the image: the request's line is on stdout
    server.line(1_000_000)
    assert any('"PUT /whoami HTTP/1.1" 200' in line for line in server.lines)


def test_compose_sets_every_template_placeholder_and_nothing_else() -> None:
    env = compose()["services"]["nginx"]["environment"]  # type: ignore[index]
    placeholders = template_placeholders()
    assert placeholders == {
        "NGINX_HTTP_LISTEN",
        "NGINX_TCP_LISTEN",
        "DATASERVE_HTTP_SERVERS",
        "DATASERVE_TCP_SERVERS",
        "NGINX_MAX_BODY_SIZE",
        "NGINX_ACCESS_LOG",
    }
    settings = {k for k in env if not k.startswith("NGINX_ENVSUBST_")}
    assert settings == placeholders
    # the image's envsubst replaces only what the filter admits
    pattern = re.compile(env["NGINX_ENVSUBST_FILTER"])
    assert all(pattern.search(name) for name in placeholders)
    assert env["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"


def test_compose_runs_the_image_the_way_the_tests_do() -> None:
    services: Any = compose()["services"]
    app = services["dataserve"]
    assert app["build"] == {"context": ".", "dockerfile": "docker/Dockerfile"}
    assert app["deploy"]["replicas"] >= 2
    # the handler's code is mounted where the image imports it from
    assert any(v.endswith(":/srv/handler:ro") for v in app["volumes"])
    assert "./docker/handler" in app["volumes"][0]
    # the service's health check is the image's
    assert app["healthcheck"]["test"] == ["CMD", *healthcheck()]
    # the command's flags are `dataserve serve` flags (defaults interpolated as compose does)
    command = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", a) for a in app["command"]]
    args = _parser().parse_args([*entrypoint()[1:], *command])
    assert (args.host, args.port, args.tcp_port, args.workers) == ("0.0.0.0", 8000, 9000, 2)
    # grace for in-flight requests: more than dataserve's shutdown timeout (30 s)
    assert int(app["stop_grace_period"].rstrip("s")) > 30
    # nginx balances the service name: every replica
    nginx = services["nginx"]
    assert "dataserve:8000" in nginx["environment"]["DATASERVE_HTTP_SERVERS"]
    assert "dataserve:9000" in nginx["environment"]["DATASERVE_TCP_SERVERS"]
    assert nginx["depends_on"]["dataserve"]["condition"] == "service_healthy"
    assert nginx["volumes"] == [
        "./docker/nginx.conf.template:/etc/nginx/templates/nginx.conf.template:ro"
    ]


def test_the_build_context_lets_in_exactly_what_the_image_copies() -> None:
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for args in instruction("COPY"):
        *sources, _ = args.split()
        copied |= {s.rstrip("/") for s in sources if not s.startswith("--")}
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)
