"""``OpsConfig``: every operations knob, defined once (CLI flags derive from it)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["DEFAULT_OPS", "OpsConfig", "add_arguments", "ops_from_args"]

# Starlette reads "{...}" in a route path as a parameter, and a space or a
# quote in a URL path is a client error: a prefix is plain path characters.
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def _knob(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class OpsConfig:
    """How a server reports on itself. The defaults suit ``dataserve serve``.

    ``prefix`` holds the health, readiness and metrics routes
    (``{prefix}/health``, ``/ready``, ``/metrics``) and the console
    (``{prefix}/``, ``{prefix}/stats``); requests under it never reach the
    handler. ``""`` turns the routes off.
    """

    # An underscore path no sensible resource uses; change it if one does.
    prefix: str = _knob("/_dataserve", "path prefix of the operations routes and the console")
    # Counters and histograms cost about a microsecond per request.
    metrics: bool = _knob(True, "Prometheus metrics")
    # Taken from X-Request-ID or generated; returned in the reply's X-Request-ID.
    request_id: bool = _knob(True, "request ids (X-Request-ID)")
    # The page at {prefix}/ with the server's status, live figures and a
    # request console; behind the token when one is set. It costs a set
    # entry per request (the requests in flight), and work only when asked.
    console: bool = _knob(True, "the status page and request console at {prefix}/")
    # Off by default: one log record per request is the most expensive part.
    access_log: bool = _knob(False, "one log line per request")
    log_format: Literal["text", "json"] = _knob("text", "log line format")
    # Resource paths are chosen by clients; a label per path would let any
    # client grow the metrics without end. Only resources the handler
    # answered get a label of their own, and at most this many.
    max_resource_labels: int = _knob(100, "most distinct resource labels in the metrics")
    # Seconds between SIGTERM and the end of accepting new requests, during
    # which readiness already answers 503 so load balancers stop sending.
    drain_delay: float = _knob(0.0, "seconds to keep serving, not ready, after SIGTERM")

    def __post_init__(self) -> None:
        if self.prefix and not _PREFIX.match(self.prefix):
            raise ValueError(
                f"ops prefix must be a path like /_dataserve (letters, digits, '._~-', "
                f"no trailing '/'), not {self.prefix!r}"
            )
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log format must be 'text' or 'json', not {self.log_format!r}")
        if isinstance(self.max_resource_labels, bool) or not isinstance(
            self.max_resource_labels, int
        ):
            raise TypeError("max_resource_labels must be an int")
        if self.max_resource_labels < 0:
            raise ValueError(
                f"max_resource_labels must be 0 or more, not {self.max_resource_labels}"
            )
        if self.drain_delay < 0:
            raise ValueError(f"drain_delay must be 0 or more, not {self.drain_delay}")

    def replace(self, **changes: Any) -> OpsConfig:
        return dataclasses.replace(self, **changes)

    @property
    def console_on(self) -> bool:
        """The console is served: it is on, and so are the routes."""
        return self.console and bool(self.prefix)


DEFAULT_OPS = OpsConfig()


def _prefix(text: str) -> str:
    try:
        OpsConfig(prefix=text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the operations flags (``--access-log`` is the caller's, it predates these)."""
    from ..core.flags import non_negative_float, non_negative_int

    group = parser.add_argument_group("operations")
    help_of = {f.name: f.metadata["help"] for f in fields(OpsConfig)}
    group.add_argument(
        "--ops-prefix",
        dest="ops_prefix",
        type=_prefix,
        default=None,
        metavar="PATH",
        help=f"{help_of['prefix']}; '' turns them off (default {DEFAULT_OPS.prefix})",
    )
    group.add_argument(
        "--log-format",
        dest="log_format",
        choices=["text", "json"],
        default=None,
        help="log lines as text (uvicorn's style) or one JSON object per line (default text)",
    )
    group.add_argument(
        "--no-metrics", dest="metrics", action="store_false", default=None, help="no metrics"
    )
    group.add_argument(
        "--no-console",
        dest="console",
        action="store_false",
        default=None,
        help="no status page and request console",
    )
    group.add_argument(
        "--no-request-id",
        dest="request_id",
        action="store_false",
        default=None,
        help="no X-Request-ID handling",
    )
    group.add_argument(
        "--metrics-max-resources",
        dest="max_resource_labels",
        type=non_negative_int,
        default=None,
        metavar="N",
        help=f"{help_of['max_resource_labels']} (default {DEFAULT_OPS.max_resource_labels})",
    )
    group.add_argument(
        "--drain-delay",
        dest="drain_delay",
        type=non_negative_float,
        default=None,
        metavar="S",
        help=f"{help_of['drain_delay']} (default {DEFAULT_OPS.drain_delay:g})",
    )


def ops_from_args(args: argparse.Namespace, base: OpsConfig = DEFAULT_OPS) -> OpsConfig:
    """An ``OpsConfig`` from parsed flags; flags not given keep ``base``'s values."""
    names = {
        "prefix": "ops_prefix",
        "log_format": "log_format",
        "metrics": "metrics",
        "console": "console",
        "request_id": "request_id",
        "max_resource_labels": "max_resource_labels",
        "drain_delay": "drain_delay",
        "access_log": "access_log",
    }
    changes: dict[str, Any] = {}
    for name, dest in names.items():
        value = getattr(args, dest, None)
        if value is None or (name == "access_log" and not value):
            continue
        changes[name] = value
    return base.replace(**changes)
