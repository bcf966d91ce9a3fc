"""``Endpoint``: a checked value, the flags derived from it, and the servers that take it."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dataserve.core.endpoint import MAX_UDS_PATH, Endpoint, exclusive, resolve_endpoint
from dataserve.core.net import DEFAULT_HOST
from dataserve.core.security import TLSConfig

LONG = "/tmp/" + "s" * MAX_UDS_PATH


def test_the_defaults_are_loopback_a_free_port_and_nothing_else() -> None:
    endpoint = Endpoint()
    assert (endpoint.host, endpoint.port) == (DEFAULT_HOST, 0)
    assert endpoint.uds is endpoint.tls is endpoint.token is None
    assert endpoint.where == f"{DEFAULT_HOST}:0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        endpoint.port = 1  # type: ignore[misc]


def test_where_names_the_address_as_messages_show_it() -> None:
    assert Endpoint("0.0.0.0", 5001).where == "0.0.0.0:5001"
    assert Endpoint("[::1]", 80).host == "::1"
    assert Endpoint("::1", 80).where == "[::1]:80"
    assert Endpoint(uds=Path("/run/ds.sock")).uds == "/run/ds.sock"  # a str, from a Path
    assert Endpoint(port=5001, uds="/run/ds.sock").where == "unix:/run/ds.sock"
    assert Endpoint(port=1).replace(host="::") == Endpoint("::", 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"port": 70000}, ValueError, "port: 70000 is not a port"),
        ({"port": -1}, ValueError, "0 picks a free one"),
        ({"port": "5001"}, TypeError, "port must be an int, not str"),
        ({"port": True}, TypeError, "port must be an int, not bool"),
        ({"host": 127}, TypeError, "host must be a string"),
        ({"host": "my host"}, ValueError, "host: 'my host' is not an address"),
        ({"uds": ""}, ValueError, "uds: the socket path is empty"),
        ({"uds": LONG}, ValueError, f"at most {MAX_UDS_PATH}"),
        ({"uds": 3}, TypeError, "uds must be a path"),
        ({"tls": ("cert", "key")}, TypeError, "tls must be a TLSConfig"),
        ({"token": 42}, TypeError, "token must be a string"),
        ({"token": "a\r\nX-Evil: 1"}, ValueError, "token: has control characters"),
    ],
)
def test_a_bad_value_is_one_clear_error(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        Endpoint(**kwargs)  # type: ignore[arg-type]


def _parser(**kwargs: object) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    Endpoint.add_arguments(parser, **kwargs)  # type: ignore[arg-type]
    return parser


def test_the_flags_have_the_commands_defaults() -> None:
    parser = _parser(port=5001, uds_clients="HTTPDataClient(uds=PATH)")
    assert Endpoint.from_args(parser.parse_args([])) == Endpoint(DEFAULT_HOST, 5001)
    args = parser.parse_args(
        ["--host", "0.0.0.0", "--port", "0", "--uds", "/run/x.sock", "--token", "t"]
    )
    assert Endpoint.from_args(args) == Endpoint("0.0.0.0", 0, uds="/run/x.sock", token="t")
    text = " ".join(parser.format_help().split())
    assert "default 5001; 0 picks a free one" in text
    assert f"default {DEFAULT_HOST}" in text
    assert "HTTPDataClient(uds=PATH)" in text
    assert {"--tls-cert", "--tls-key", "--tls-client-ca", "--token"} <= set(text.split())


def test_flags_not_given_keep_the_server_objects_own_address() -> None:
    parser = _parser(host=None, port=None, token=False)
    text = parser.format_help()
    assert "--uds" not in text and "--token" not in text  # no socket, no token
    assert "the server object's" in text
    base = Endpoint("10.0.0.5", 7272)
    assert Endpoint.from_args(parser.parse_args([]), base) == base
    changed = Endpoint.from_args(parser.parse_args(["--port", "9"]), base)
    assert changed == Endpoint("10.0.0.5", 9)


def test_tls_flags_make_a_tls_config(pki: dict[str, str]) -> None:
    parser = _parser(port=0)
    args = parser.parse_args(["--tls-cert", pki["cert"], "--tls-key", pki["key"]])
    assert Endpoint.from_args(args).tls == TLSConfig(pki["cert"], pki["key"])
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        Endpoint.from_args(parser.parse_args(["--tls-cert", pki["cert"]]))
    kept = Endpoint(tls=TLSConfig(pki["cert"], pki["key"]))
    assert Endpoint.from_args(parser.parse_args([]), kept).tls == kept.tls


def test_a_bad_flag_value_names_the_flag() -> None:
    parser = _parser(port=0, uds_clients="a client")
    with pytest.raises(ValueError, match=r"^argument --uds: .* at most"):
        Endpoint.from_args(parser.parse_args(["--uds", LONG]))
    with pytest.raises(ValueError, match=r"^argument --host: "):
        Endpoint.from_args(parser.parse_args(["--host", "a b"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--port", "70000"])  # argparse refuses it, naming --port


def test_endpoint_or_the_separate_keywords_not_both() -> None:
    endpoint = Endpoint(port=5)
    keywords = {"host": DEFAULT_HOST, "port": None, "uds": None, "tls": None, "token": None}
    assert resolve_endpoint(endpoint, **keywords) is endpoint  # type: ignore[arg-type]
    assert resolve_endpoint(None, **{**keywords, "port": 7, "token": ""}) == Endpoint(  # type: ignore[arg-type]
        port=7, token=""
    )
    assert resolve_endpoint(None, **keywords).port == 0  # type: ignore[arg-type]
    for name, value in [("host", "0.0.0.0"), ("port", 1), ("uds", "/x"), ("token", "")]:
        with pytest.raises(TypeError, match=f"give endpoint= or {name}=, not both"):
            resolve_endpoint(endpoint, **{**keywords, name: value})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="endpoint must be an Endpoint"):
        resolve_endpoint(("127.0.0.1", 5), **keywords)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="give options= or timeout=, token=, not both"):
        exclusive("options", {"timeout": True, "verify": False, "token": True})
    exclusive("options", {"timeout": False})


def test_the_servers_refuse_both_before_binding() -> None:
    from dataserve import run_http_server
    from rawproto import serve

    endpoint = Endpoint(port=0)
    with pytest.raises(TypeError, match="give endpoint= or port=, not both"):
        run_http_server(5001, print, endpoint=endpoint)
    with pytest.raises(TypeError, match="give endpoint= or host=, tls="):
        serve(print, endpoint=endpoint, host="::", tls=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a data handler"):
        run_http_server(endpoint=endpoint)
    with pytest.raises(TypeError, match="needs a port"):
        run_http_server(data_handler=print)
    with pytest.raises(TypeError, match="needs a port"):
        serve(print)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "dataserve", "serve", "--uds", LONG],
        [sys.executable, "-m", "rawproto", "serve", "native", "--uds", LONG],
    ],
    ids=["dataserve", "rawproto"],
)
def test_both_commands_refuse_a_bad_uds_in_one_line(command: list[str]) -> None:
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: argument --uds: " in lines[0], out.stderr
    assert not os.path.exists(LONG)


# --- docs/endpoints.md shows what the code does ------------------------------------

DOC = (Path(__file__).resolve().parents[2] / "docs" / "endpoints.md").read_text()


def doc_defaults(section: str) -> dict[str, object]:
    """``{field: default}`` from the field table of a section of docs/endpoints.md."""
    text = DOC.split(section, 1)[1].split("\n#", 1)[0]
    table: dict[str, object] = {}
    for name, shown in re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, re.MULTILINE):
        shown = shown.strip().strip("`")
        value: object = {"None": None, "True": True, "False": False}.get(shown, shown)
        if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value):
            value = float(value)
        table[name] = value
    return table


def test_the_docs_table_shows_every_field_and_its_default() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Endpoint)}
    assert doc_defaults("## Endpoint:") == defaults
    for code in re.findall(r"```python\n(.*?)```", DOC, re.DOTALL):
        compile(code, "docs/endpoints.md", "exec")
