"""dataserve.core.flags: one-line errors, value types and flags from the environment."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from dataserve.core import flags
from dataserve.core.flags import Parser, apply_environment, env_name, environment_flags


def test_a_parser_error_is_one_line_naming_the_command_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = Parser(prog="dataserve")
    sub = parser.add_subparsers(dest="cmd")
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=flags.port)
    assert isinstance(serve, Parser)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["serve", "--port", "99999"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "dataserve: error: argument --port: 99999 is not a port (0 to 65535; 0 picks a free one)\n"
    )


@pytest.mark.parametrize(
    ("parse", "good", "bad", "message"),
    [
        (flags.port, [("0", 0), ("65535", 65535)], ["-1", "65536"], "is not a port"),
        (flags.positive_int, [("1", 1)], ["0", "-3"], "must be 1 or more"),
        (flags.non_negative_int, [("0", 0), ("7", 7)], ["-1"], "must be 0 or more"),
        (flags.positive_float, [("0.5", 0.5)], ["0", "-1", "nan"], "must be more than 0"),
        (flags.non_negative_float, [("0", 0.0)], ["-0.1", "nan"], "must be 0 or more"),
    ],
)
def test_number_types(
    parse: object, good: list[tuple[str, float]], bad: list[str], message: str
) -> None:
    assert callable(parse)
    for text, value in good:
        assert parse(text) == value
        assert type(parse(text)) is type(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)


def test_what_is_not_a_number_says_so() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="'x' is not a whole number"):
        flags.positive_int("x")
    with pytest.raises(argparse.ArgumentTypeError, match="'1.5' is not a whole number"):
        flags.port("1.5")
    with pytest.raises(argparse.ArgumentTypeError, match="'y' is not a number"):
        flags.positive_float("y")


def test_readable_file(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    assert flags.readable_file(str(f)) == f
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        flags.readable_file(str(tmp_path / "nope"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a directory"):
        flags.readable_file(str(tmp_path))
    if os.geteuid() != 0:  # root reads anything
        f.chmod(0)
        with pytest.raises(argparse.ArgumentTypeError, match="permission denied"):
            flags.readable_file(str(f))


def make() -> Parser:
    parser = Parser(prog="tool")
    parser.add_argument("--max-body-size", type=flags.positive_int, default=10)
    parser.add_argument("-v", action="store_true")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--mode", choices=["a", "b"], default="a")
    parser.add_argument("handler")
    return parser


def test_env_names_come_from_the_long_flag() -> None:
    parser = make()
    names = dict(environment_flags(parser, "DS"))
    assert names == {
        "DS_MAX_BODY_SIZE": "--max-body-size",
        "DS_ACCESS_LOG": "--access-log",
        "DS_DEBUG": "--debug",
        "DS_MODE": "--mode",
        "DS_HANDLER": "handler",
    }
    help_action = parser._actions[0]
    assert env_name("DS", help_action) is None


def test_the_environment_gives_defaults_and_the_command_line_wins() -> None:
    parser = make()
    apply_environment(
        parser,
        "DS",
        {
            "DS_MAX_BODY_SIZE": "20",
            "DS_ACCESS_LOG": "off",
            "DS_DEBUG": "yes",
            "DS_MODE": "b",
            "DS_HANDLER": "mod:h",
        },
    )
    args = parser.parse_args([])
    assert (args.max_body_size, args.access_log, args.debug, args.mode, args.handler) == (
        20,
        False,
        True,
        "b",
        "mod:h",
    )
    assert parser.parse_args(["--max-body-size", "30", "other:h"]).max_body_size == 30


def test_an_empty_variable_is_unset() -> None:
    parser = make()
    apply_environment(parser, "DS", {"DS_MAX_BODY_SIZE": "", "DS_DEBUG": ""})
    args = parser.parse_args(["h"])
    assert args.max_body_size == 10 and args.debug is False


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "DS_MAX_BODY_SIZE",
            "0",
            "DS_MAX_BODY_SIZE (for --max-body-size): must be 1 or more, not 0",
        ),
        ("DS_DEBUG", "maybe", "DS_DEBUG (for --debug): 'maybe' is not one of 1, true, 0, false"),
        ("DS_MODE", "c", "DS_MODE (for --mode): 'c' is not one of a, b"),
    ],
)
def test_a_bad_variable_is_a_one_line_error_naming_it(
    variable: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        apply_environment(make(), "DS", {variable: value})
    assert info.value.code == 2
    assert capsys.readouterr().err == f"tool: error: {message}\n"
