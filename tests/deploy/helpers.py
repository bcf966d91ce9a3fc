"""Helpers for the deployment tests: real nginx from the compose template, backends, metrics."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import yaml

from dataserve.http.server import bind_socket
from tests.conftest import ROOT, ServerProcess, missing, need_tool

DATASERVE = [sys.executable, "-m", "dataserve"]
DOCKER = ROOT / "docker"
TEMPLATE = DOCKER / "nginx.conf.template"
HANDLER_DIR = DOCKER / "handler"  # the example handler compose.yaml mounts
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def nginx_binary() -> str:
    return need_tool("nginx")


def compose() -> dict[str, object]:
    with (ROOT / "compose.yaml").open() as f:
        doc: dict[str, object] = yaml.safe_load(f)
    return doc


def template_placeholders() -> set[str]:
    return set(_PLACEHOLDER.findall(TEMPLATE.read_text()))


def render(template: str, values: Mapping[str, str]) -> str:
    """``${NAME}`` replaced as the nginx image's envsubst does; every one must be given."""
    unknown = set(_PLACEHOLDER.findall(template)) - set(values)
    assert not unknown, f"no value for {sorted(unknown)}"
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


class Nginx:
    """A real nginx on loopback, configured from ``docker/nginx.conf.template``.

    Its listening sockets are bound here on port 0 and handed over through
    the ``NGINX`` environment variable (the way nginx passes sockets to a new
    binary on upgrade), so the ports are known without guessing a free one,
    and connections queue from the start: no waiting for nginx to be up.
    """

    def __init__(
        self,
        workdir: Path,
        http_servers: list[str],
        tcp_servers: list[str] | None = None,
        *,
        server_options: str = "max_fails=1 fail_timeout=1s",
    ) -> None:
        binary = nginx_binary()
        version = subprocess.run([binary, "-V"], capture_output=True, text=True).stderr
        head = ""
        if "--with-stream=dynamic" in version:
            # Debian builds the stream module separately; the nginx image has it built in.
            if not STREAM_MODULE.exists():
                missing(
                    "nginx's stream module is not installed (apt-get install libnginx-mod-stream)"
                )
            head = f"load_module {STREAM_MODULE};\n"
        self.workdir = workdir
        self.http_sock = bind_socket("127.0.0.1", 0)
        self.tcp_sock = bind_socket("127.0.0.1", 0)
        # nginx makes the sockets it opens non-blocking, not those it inherits:
        # a blocking one would leave a worker stuck in accept(), deaf to its
        # other connections.
        self.http_sock.setblocking(False)
        self.tcp_sock.setblocking(False)
        self.http_port = self.http_sock.getsockname()[1]
        self.tcp_port = self.tcp_sock.getsockname()[1]

        def lines(servers: list[str]) -> str:
            return " ".join(f"server {s} {server_options};" for s in servers)

        text = render(
            TEMPLATE.read_text(),
            {
                "NGINX_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
                "NGINX_TCP_LISTEN": f"127.0.0.1:{self.tcp_port}",
                "DATASERVE_HTTP_SERVERS": lines(http_servers),
                # An upstream must list a server: a closed port stands in.
                "DATASERVE_TCP_SERVERS": lines(tcp_servers or ["127.0.0.1:1"]),
                "NGINX_MAX_BODY_SIZE": "16m",
                "NGINX_ACCESS_LOG": f"{workdir / 'access.log'} dataserve",
            },
        )
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(head + text)
        self.error_log = workdir / "error.log"
        fds = (self.http_sock.fileno(), self.tcp_sock.fileno())
        self.proc = subprocess.Popen(
            [
                binary,
                "-p",
                str(workdir),
                "-c",
                str(self.conf),
                "-e",
                str(self.error_log),
                "-g",
                f"daemon off; pid {workdir / 'nginx.pid'};",
            ],
            env={**os.environ, "NGINX": "".join(f"{fd};" for fd in fds)},
            pass_fds=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else ""

    def access_log(self) -> str:
        path = self.workdir / "access.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # nginx's fast shutdown
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.http_sock.close()
        self.tcp_sock.close()


def serve_process(*args: str, cwd: Path = HANDLER_DIR, **env: str) -> ServerProcess:
    """``dataserve serve ARGS`` in a subprocess (the example handler's directory by default)."""
    return ServerProcess([*DATASERVE, "serve", *args], cwd=cwd, env=env or None)


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> bool:
    """Call ``condition`` until it is true; each call does real I/O (a request),
    which paces the loop, so nothing sleeps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
    return condition()


def all_started(server: ServerProcess, workers: int) -> bool:
    """Wait until ``workers`` workers have started (their native listeners
    with them: each starts its own, and only then reports its startup)."""

    def started() -> bool:
        ready = httpx.get(server.url + "/_dataserve/ready", timeout=30).status_code == 200
        return ready and server.error_output().count("Application startup complete.") == workers

    return wait_until(started)


def finish(server: ServerProcess, timeout: float = 30) -> tuple[int, str, str]:
    """SIGTERM, wait for the exit, and return (status, all stdout, all stderr)."""
    status = server.stop(timeout)
    server.line(sys.maxsize, timeout)  # no such line: returns at the end of the output
    return status, "".join(server.lines), server.error_output()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text exposition -> ``{(name, labels): value}``."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, line
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def metric(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(
    url: str, prefix: str = "/_dataserve"
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = httpx.get(f"{url}{prefix}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return parse_metrics(r.text)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)
