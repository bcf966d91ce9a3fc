from __future__ import annotations

import argparse

import pytest

from dataserve.core.limits import (
    DEFAULT_LIMITS,
    Limits,
    add_arguments,
    limits_from_args,
    parse_size,
)


def test_every_limit_is_a_flag_with_its_default_in_the_help() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--max-body-size", "100M", "--handler-threads", "4"])
    limits = limits_from_args(args)
    assert limits.max_body_size == 100 * 1024 * 1024
    assert limits.handler_threads == 4
    assert limits.body_timeout == DEFAULT_LIMITS.body_timeout
    help_text = parser.format_help()
    for flag in ("--max-body-size", "--keepalive-timeout", "--max-connections", "--idle-timeout"):
        assert flag in help_text


@pytest.mark.parametrize(
    ("text", "size"),
    [("4096", 4096), ("64K", 65536), ("1m", 1048576), ("1GiB", 1 << 30), ("1.5k", 1536)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    with pytest.raises(ValueError, match="must be positive"):
        Limits(max_body_size=0)
    with pytest.raises(TypeError, match="must be a number"):
        Limits(handler_threads="2")  # type: ignore[arg-type]


def test_a_knob_that_zero_turns_off_takes_zero_and_no_less() -> None:
    assert Limits(buffer_retain=0).buffer_retain == 0
    with pytest.raises(ValueError, match="buffer_retain must be 0 or more, not -1"):
        Limits(buffer_retain=-1)
    with pytest.raises(ValueError, match="buffer_linger must be positive, not 0"):
        Limits(buffer_linger=0)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert limits_from_args(parser.parse_args(["--buffer-retain", "0"])).buffer_retain == 0
    assert limits_from_args(parser.parse_args(["--buffer-retain", "256M"])).buffer_retain == 1 << 28
    with pytest.raises(SystemExit):
        parser.parse_args(["--max-body-size", "0"])
