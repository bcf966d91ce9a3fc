"""The dataserve command: serve, send, and its one-line errors."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dataserve import HTTPDataClient
from dataserve.http.server import bind_socket
from tests.conftest import ROOT, ServerProcess, need_tool

DATASERVE = [sys.executable, "-m", "dataserve"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DATASERVE, *args], capture_output=True, text=True, timeout=60)


def test_serve_with_no_argument_serves_the_seed_example_and_prints_a_curl_line() -> None:
    server = ServerProcess([*DATASERVE, "serve", "--port", "0"])
    try:
        assert "dataserve.example:ExampleHandler" in server.lines[0]
        line = server.line(1)
        assert line.startswith("Try: curl -X PUT")
        assert f"http://127.0.0.1:{server.port}/xdata" in line
        r = httpx.put(f"{server.url}/xdata", json=[4, 5, 6])
        assert r.json() == [1, 2, 3, 4, 5, 6]
        # the curl line, run as printed
        need_tool("curl")
        out = subprocess.run(line[len("Try: ") :], shell=True, capture_output=True, timeout=30)
        assert out.stdout == b"[1,2,3,4,5,6]"
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0


def test_send_prints_the_decoded_reply() -> None:
    server = ServerProcess([*DATASERVE, "serve", "tests.http.handlers:Echo", "--port", "0"])
    try:
        out = run("send", server.url, "/echo", "--json", '{"a": [1, 2]}')
        assert out.returncode == 0 and out.stdout == '{"a": [1, 2]}\n'
        out = run("send", server.url, "/echo", "--text", "hello")
        assert out.stdout == "hello\n"
        out = run("send", server.url, "/echo")  # no payload: sent as '', as dataserve 0.1 did
        assert out.returncode == 0 and out.stdout == "\n"
        out = run("send", server.url, "/none", "--text", "x")  # Echo answers None
        assert out.returncode == 1
        assert out.stderr == "dataserve: error: 404: resource '/none' is not handled\n"
    finally:
        assert server.stop() == 0


def test_send_errors_are_one_line() -> None:
    # Bound and held, not listening: connections are refused, and no other
    # process can take the port while the test runs.
    with bind_socket("127.0.0.1", 0, listen=False) as sock:
        port = sock.getsockname()[1]
        out = run("send", f"http://127.0.0.1:{port}", "/x")
    assert out.returncode == 1
    assert out.stderr.startswith(f"dataserve: error: cannot connect to http://127.0.0.1:{port}/x")
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:Handler", "cannot import module 'no_such_module_xyz'"),
        ("tests.http.handlers:Missing", "has no attribute 'Missing'"),
        ("tests.http.handlers:not_a_handler", "is a list, not a handler"),
        ("nocolon", "handler must be given as MODULE:ATTR"),
    ],
)
def test_bad_handler_spec_exits_with_one_clear_line(spec: str, message: str) -> None:
    out = run("serve", spec, "--port", "0")
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_port_in_use_exits_with_one_clear_line() -> None:
    with bind_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        out = run("serve", "--port", str(port))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"dataserve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_bad_limit_flag_is_refused_by_argparse() -> None:
    out = run("serve", "--max-body-size", "lots")
    assert out.returncode == 2 and "--max-body-size" in out.stderr


@pytest.mark.slow
def test_workers_serve_from_several_processes() -> None:
    server = ServerProcess(
        [*DATASERVE, "serve", "tests.http.handlers:Echo", "--port", "0", "--workers", "2"]
    )
    try:
        pids = set()
        for _ in range(200):
            with httpx.Client() as client:  # a new connection each time
                pids.add(client.put(f"{server.url}/pid").json())
            if len(pids) == 2:
                break
        assert len(pids) == 2
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0


def test_python_dash_m_help() -> None:
    out = run("--help")
    assert out.returncode == 0 and "serve" in out.stdout and "send" in out.stdout


# --- every bad value: one line naming the flag, status 2, no traceback -------

BAD_SERVE = [
    (["--port", "70000"], "--port"),
    (["--port", "-1"], "--port"),
    (["--tcp-port", "70000"], "--tcp-port"),
    (["--workers", "0"], "--workers"),
    (["--max-body-size", "lots"], "--max-body-size"),
    (["--max-body-size", "0"], "--max-body-size"),
    (["--handler-threads", "0"], "--handler-threads"),
    (["--header-timeout", "-1"], "--header-timeout"),
    (["--log-level", "loud"], "--log-level"),
    (["--log-config", "no-such-logging.json"], "--log-config"),
    (["--ops-prefix", "no-slash"], "--ops-prefix"),
    (["--drain-delay", "-1"], "--drain-delay"),
    (["--tls-cert", "no-such.pem", "--tls-key", "no-such.key"], "--tls-cert"),
    (["--tls-cert", "no-such.pem"], "--tls-cert"),
]
BAD_SEND = [
    (["send", "--file", "no-such-file", "http://127.0.0.1:1/x"], "--file"),
    (["send", "--timeout", "-1", "http://127.0.0.1:1/x"], "--timeout"),
    (["send", "--json", "{", "http://127.0.0.1:1/x"], "--json"),
    (["send", "http://127.0.0.1:1"], "url"),
    (["send", "127.0.0.1:1/x"], "url"),
]


def assert_one_line_error(out: subprocess.CompletedProcess[str], flag: str) -> None:
    assert out.returncode == 2, out
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("dataserve: error: ")
    assert flag in lines[0]
    for internal in ("Traceback", "parse_size", "handler_threads", "positive_int", "port value"):
        assert internal not in lines[0]


@pytest.mark.parametrize(("args", "flag"), BAD_SERVE, ids=lambda a: " ".join(a))
def test_a_bad_serve_flag_is_one_line_naming_it(args: list[str], flag: str) -> None:
    assert_one_line_error(run("serve", *args), flag)


@pytest.mark.parametrize(("args", "flag"), BAD_SEND, ids=lambda a: " ".join(a))
def test_a_bad_send_flag_is_one_line_naming_it(args: list[str], flag: str) -> None:
    assert_one_line_error(run(*args), flag)


def test_a_bad_environment_value_names_the_variable_and_its_flag() -> None:
    for name, value, flag in [
        ("DATASERVE_PORT", "70000", "--port"),
        ("DATASERVE_ACCESS_LOG", "maybe", "--access-log"),
        ("DATASERVE_MAX_BODY_SIZE", "lots", "--max-body-size"),
    ]:
        out = subprocess.run(
            [*DATASERVE, "serve"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, name: value},
        )
        assert_one_line_error(out, flag)
        assert name in out.stderr


def test_help_says_sizes_take_suffixes_and_flags_come_from_the_environment() -> None:
    out = run("serve", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "sizes in bytes take suffixes: 64K, 100M, 1G" in text
    assert "--max-body-size SIZE" in text and "(default 1G)" in text
    assert "DATASERVE_MAX_BODY_SIZE" in text


def test_version_is_the_distribution_version() -> None:
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout == f"dataserve {importlib.metadata.version('dataserve')}\n"


# --- what users of uvicorn and httpx type -----------------------------------


def test_every_flag_is_also_an_environment_variable_and_the_command_line_wins() -> None:
    env = {
        "DATASERVE_HANDLER": "tests.http.handlers:Echo",
        "DATASERVE_PORT": "0",
        "DATASERVE_MAX_BODY_SIZE": "1K",
        "DATASERVE_ACCESS_LOG": "true",
        "DATASERVE_LOG_LEVEL": "WARNING",
    }
    server = ServerProcess([*DATASERVE, "serve", "--log-level", "info"], env=env)
    try:
        assert "tests.http.handlers:Echo" in server.lines[0]
        assert httpx.put(f"{server.url}/echo", content=b"x" * 2048).status_code == 413
        assert httpx.put(f"{server.url}/echo", json=[1]).json() == [1]
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
    # the access log (from the environment) wrote its lines, and the startup
    # lines of --log-level info (the flag, over the variable's WARNING) are there
    assert any('"PUT /echo HTTP/1.1" 413' in line for line in server.lines)
    assert "Application startup complete" in server.error_output()


def test_environment_names_do_not_collide_with_the_worker_hand_off() -> None:
    from dataserve import workers
    from dataserve.cli import ENV_PREFIX, _parser
    from dataserve.core.flags import environment_flags

    serve = _parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    names = dict(environment_flags(serve, ENV_PREFIX))
    assert names["DATASERVE_MAX_BODY_SIZE"] == "--max-body-size"
    assert names["DATASERVE_TLS_CERT"] == "--tls-cert"
    assert names["DATASERVE_HANDLER"] == "handler"
    assert names["DATASERVE_TOKEN"] == "--token"
    handed = {workers.LIMITS_ENV, workers.OPS_ENV, workers.NATIVE_ENV}
    assert not handed & set(names)


def test_log_level_in_any_case_and_a_log_config_file(tmp_path: Path) -> None:
    config = tmp_path / "logging.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"mine": {"format": "MINE %(levelname)s %(message)s"}},
                "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "mine"}},
                "loggers": {"uvicorn": {"handlers": ["err"], "level": "INFO"}},
            }
        )
    )
    server = ServerProcess(
        [*DATASERVE, "serve", "--port", "0", "--log-level", "INFO", "--log-config", str(config)]
    )
    try:
        assert httpx.put(f"{server.url}/xdata", json=[4]).json() == [1, 2, 3, 4]
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
    assert "MINE INFO Application startup complete" in server.error_output()


def test_root_path_serves_behind_a_prefix_stripping_proxy() -> None:
    server = ServerProcess([*DATASERVE, "serve", "--port", "0", "--root-path", "/api"])
    try:
        # a proxy that mounts the server at /api forwards /api/xdata as /xdata
        assert httpx.put(f"{server.url}/xdata", json=[4]).json() == [1, 2, 3, 4]
        assert httpx.get(f"{server.url}/_dataserve/health").status_code == 200
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("trusted", [True, False])
def test_proxy_headers_and_forwarded_allow_ips(trusted: bool) -> None:
    args = ["--forwarded-allow-ips", "127.0.0.1"] if trusted else ["--no-proxy-headers"]
    server = ServerProcess([*DATASERVE, "serve", "--port", "0", "--access-log", *args])
    try:
        headers = {"x-forwarded-for": "203.0.113.9"}
        assert httpx.put(f"{server.url}/xdata", json=[4], headers=headers).status_code == 200
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
    access = [line for line in server.lines if '"PUT /xdata HTTP/1.1" 200' in line]
    assert len(access) == 1
    assert ("203.0.113.9" in access[0]) is trusted


def test_ssl_certfile_and_keyfile_are_the_tls_flags(pki: dict[str, str]) -> None:
    tls = ["--ssl-certfile", pki["cert"], "--ssl-keyfile", pki["key"]]
    server = ServerProcess([*DATASERVE, "serve", "--port", "0", *tls])
    try:
        assert server.lines[0].split()[-5].startswith("https://")
        client = HTTPDataClient(server.port, "https://127.0.0.1:", ca_file=pki["ca"])
        with client:
            assert client.send("/xdata", [4]) == [1, 2, 3, 4]
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_reload_restarts_when_the_handler_changes(tmp_path: Path) -> None:
    module = tmp_path / "live.py"
    module.write_text("def handler(resource, payload):\n    return 'first'\n")
    server = ServerProcess(
        [*DATASERVE, "serve", "live:handler", "--port", "0", "--reload"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    try:
        assert httpx.put(f"{server.url}/x", timeout=30).text == "first"
        answers = set()
        deadline = time.monotonic() + 60
        while "second" not in answers and time.monotonic() < deadline:
            # The reloader starts watching a moment after the server answers
            # first, so the change is written again until it is seen; each try
            # is a round trip, and during the restart the port queues it.
            module.write_text("def handler(resource, payload):\n    return 'second'\n")
            answers.add(httpx.put(f"{server.url}/x", timeout=30).text)
        assert "second" in answers
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0


def test_send_takes_one_url_as_curl_does() -> None:
    server = ServerProcess([*DATASERVE, "serve", "tests.http.handlers:Echo", "--port", "0"])
    try:
        out = run("send", f"{server.url}/echo", "--json", "[1, 2]")
        assert out.returncode == 0 and out.stdout == "[1, 2]\n"
        out = run("send", f"{server.url}/echo?q=1", "--text", "hi")
        assert out.returncode == 0 and out.stdout == "hi\n"
    finally:
        assert server.stop() == 0


# --- safer defaults --------------------------------------------------------


def test_binding_beyond_loopback_without_token_or_tls_warns() -> None:
    # 192.0.2.1 (TEST-NET-1) is assigned to no interface here: the warning
    # comes first, then the bind fails, so nothing listens beyond loopback.
    env = {k: v for k, v in os.environ.items() if k != "DATASERVE_TOKEN"}
    out = subprocess.run(
        [*DATASERVE, "serve", "--host", "192.0.2.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("dataserve: warning: --host 192.0.2.1 serves other machines")
    assert "--token or TLS" in lines[0]
    assert out.returncode == 1 and lines[1].startswith("dataserve: error: cannot listen on")
    out = subprocess.run(
        [*DATASERVE, "serve", "--host", "192.0.2.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DATASERVE_TOKEN": "s3cret"},
    )
    assert "warning" not in out.stderr
    out = run("serve", "--port", "0", "--workers", "0")  # no warning on loopback either
    assert "warning" not in out.stderr


def test_the_hint_line_names_an_address_a_client_can_reach() -> None:
    from dataserve.cli import _local

    assert _local("http://0.0.0.0:5001") == "http://127.0.0.1:5001"
    assert _local("http://[::]:5001") == "http://[::1]:5001"
    assert _local("https://127.0.0.1:8443") == "https://127.0.0.1:8443"
    assert _local("http://192.168.1.4:80") == "http://192.168.1.4:80"
