"""dataserve.ops.config: every operations knob once, and the flags derived from it."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from dataserve.core.flags import Parser
from dataserve.ops.config import DEFAULT_OPS, OpsConfig, add_arguments, ops_from_args


def test_the_defaults() -> None:
    assert OpsConfig() == DEFAULT_OPS
    assert (DEFAULT_OPS.prefix, DEFAULT_OPS.metrics, DEFAULT_OPS.request_id) == (
        "/_dataserve",
        True,
        True,
    )
    assert DEFAULT_OPS.access_log is False and DEFAULT_OPS.console_on
    assert all(f.metadata.get("help") for f in dataclasses.fields(OpsConfig))


@pytest.mark.parametrize("prefix", ["/ops", "/a/b.c_d~-e", ""])
def test_good_prefixes(prefix: str) -> None:
    assert OpsConfig(prefix=prefix).prefix == prefix


@pytest.mark.parametrize("prefix", ["ops", "/ops/", "/a b", "/{x}", "/a'b", "//"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="ops prefix must be a path like /_dataserve"):
        OpsConfig(prefix=prefix)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"log_format": "xml"}, ValueError, "log format must be 'text' or 'json'"),
        ({"max_resource_labels": True}, TypeError, "must be an int"),
        ({"max_resource_labels": 1.5}, TypeError, "must be an int"),
        ({"max_resource_labels": -1}, ValueError, "must be 0 or more, not -1"),
        ({"drain_delay": -0.5}, ValueError, "drain_delay must be 0 or more"),
    ],
)
def test_bad_values_are_refused(
    changes: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        OpsConfig(**changes)  # type: ignore[arg-type]


def test_replace_checks_too_and_the_console_needs_the_routes() -> None:
    assert DEFAULT_OPS.replace(metrics=False).metrics is False
    with pytest.raises(ValueError):
        DEFAULT_OPS.replace(drain_delay=-1)
    assert not OpsConfig(prefix="").console_on
    assert not OpsConfig(console=False).console_on


def parse(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="dataserve")
    parser.add_argument("--access-log", action="store_true", default=False)
    add_arguments(parser)
    return parser.parse_args(argv)


def test_no_flags_keep_the_base() -> None:
    base = OpsConfig(prefix="/ops", max_resource_labels=5)
    assert ops_from_args(parse([]), base) == base
    assert ops_from_args(parse([])) == DEFAULT_OPS


def test_every_flag_reaches_its_knob() -> None:
    args = parse(
        [
            "--ops-prefix", "/ops",
            "--log-format", "json",
            "--no-metrics",
            "--no-console",
            "--no-request-id",
            "--metrics-max-resources", "7",
            "--drain-delay", "2.5",
            "--access-log",
        ]
    )  # fmt: skip
    assert ops_from_args(args) == OpsConfig(
        prefix="/ops",
        log_format="json",
        metrics=False,
        console=False,
        request_id=False,
        max_resource_labels=7,
        drain_delay=2.5,
        access_log=True,
    )


def test_an_empty_prefix_turns_the_routes_off() -> None:
    assert ops_from_args(parse(["--ops-prefix", ""])).prefix == ""


def test_bad_flag_values_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--ops-prefix", "/a b"], ["--drain-delay", "-1"]):
        with pytest.raises(SystemExit):
            parse(argv)
    err = capsys.readouterr().err
    assert "argument --ops-prefix: ops prefix must be a path like" in err
    assert "argument --drain-delay: must be 0 or more" in err
