"""What the ``dataserve`` and ``rawproto`` commands share about their flags.

* ``Parser``: argparse whose errors are one line, ``PROG: error: MESSAGE``,
  with exit status 2 (argparse's own status for a bad command line), and no
  usage dump: the message names the flag, ``--help`` has the rest.
* Value types that refuse a bad value with a message naming the value, not
  the function that parsed it (argparse says "invalid parse_size value"
  unless the type raises ``ArgumentTypeError``). Sizes: ``limits.size``.
* ``apply_environment``: every flag of a parser may also be given as
  ``PREFIX_<FLAG>`` in the environment, derived from the flag itself
  (``--max-body-size`` -> ``DATASERVE_MAX_BODY_SIZE``), so a flag added
  anywhere (a new ``Limits`` field, say) gets its variable with no more code.
  The command line wins over the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NoReturn

__all__ = [
    "Parser",
    "apply_environment",
    "env_name",
    "environment_flags",
    "non_negative_float",
    "non_negative_int",
    "port",
    "positive_float",
    "positive_int",
    "readable_file",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line and exit 2.

    Subparsers made by ``add_subparsers`` are ``Parser`` too, so every
    subcommand answers the same way.
    """

    def error(self, message: str) -> NoReturn:
        # A subcommand's prog is "dataserve serve": errors name the command.
        self.exit(2, f"{self.prog.split()[0]}: error: {message}\n")


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: the system picks a free one)."""
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 to 65535; 0 picks a free one)")
    return int(value)


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return int(value)


def non_negative_int(text: str) -> int:
    """A whole number of at least 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return int(value)


def positive_float(text: str) -> float:
    """A number above 0 (seconds, usually)."""
    value = _number(text, float)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return float(value)


def non_negative_float(text: str) -> float:
    """A number of at least 0."""
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return float(value)


def readable_file(text: str) -> Path:
    """The path of a file that exists and can be read."""
    path = Path(text)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text} {what}")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} cannot be read (permission denied)")
    return path


def env_name(prefix: str, action: argparse.Action) -> str | None:
    """``PREFIX_FLAG`` for an action's first long flag, ``PREFIX_DEST`` for a
    positional; ``None`` for ``--help`` and ``--version``."""
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
        return None
    if not action.option_strings:
        return f"{prefix}_{action.dest.upper()}"
    long = next((s for s in action.option_strings if s.startswith("--")), None)
    if long is None:
        return None
    return f"{prefix}_{long[2:].replace('-', '_').upper()}"


def environment_flags(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, str]]:
    """``(variable, flag)`` for every flag of ``parser`` that the environment may set."""
    for action in parser._actions:
        name = env_name(prefix, action)
        if name is not None:
            yield name, (action.option_strings or [action.dest])[0]


def apply_environment(
    parser: argparse.ArgumentParser, prefix: str, environ: Mapping[str, str] | None = None
) -> None:
    """Make ``PREFIX_<FLAG>`` variables the defaults of ``parser``'s flags.

    A value is checked as the flag's own would be; a bad one is a one-line
    error that names the variable and its flag. An on/off flag
    (``--access-log``) takes ``1``/``true``/``yes``/``on`` or
    ``0``/``false``/``no``/``off``.
    """
    environ = os.environ if environ is None else environ
    for action in parser._actions:
        name = env_name(prefix, action)
        if name is None or name not in environ:
            continue
        text = environ[name]
        flag = (action.option_strings or [action.dest])[0]
        if action.nargs == 0:  # store_true / store_false / store_const
            answer = text.strip().lower()
            if answer not in _TRUE | _FALSE:
                parser.error(f"{name} (for {flag}): {text!r} is not one of 1, true, 0, false")
            if isinstance(action, argparse.BooleanOptionalAction):
                action.default = answer in _TRUE
            elif answer in _TRUE:
                action.default = action.const
            continue
        if text == "":
            continue  # an empty variable is an unset one
        try:
            value = action.type(text) if callable(action.type) else text
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            parser.error(f"{name} (for {flag}): {exc}")
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            parser.error(f"{name} (for {flag}): {text!r} is not one of {choices}")
        action.default = value
        if not action.option_strings and action.nargs in (None, 1):
            # A positional given in the environment may be left out.
            action.nargs = "?"
