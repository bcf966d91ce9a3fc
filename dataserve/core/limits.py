"""Every limit and timeout, defined once.

``Limits`` is the one config object shared by the HTTP server, the raw TCP
engine and the CLI. Each field is a knob with a safe default; its metadata
holds the help text, and ``add_arguments`` derives the command-line flags from
the fields (``max_body_size`` -> ``--max-body-size``), so a knob is never
spelled out twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from typing import Any

from .flags import positive_float, positive_int

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "add_arguments",
    "limits_from_args",
    "parse_size",
    "size",
    "size_or_zero",
]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def _knob(default: Any, help: str, kind: str = "", zero: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "kind": kind, "zero": zero})


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits and timeouts (seconds). Defaults are safe for a loopback data server."""

    # Bodies are decoded in memory, so the largest body bounds memory per request.
    # 1 GiB fits the datasets this server is for and stays well under RAM.
    max_body_size: int = _knob(1 * GiB, "largest request body accepted, in bytes (413)", "size")
    # The native TCP framing and tinyproto check the announced length against
    # this before buffering a payload.
    max_frame_size: int = _knob(1 * GiB, "largest raw TCP frame accepted, in bytes", "size")
    # msgpack-python's own limits derive from the buffer size (a 1 GiB frame
    # could announce 500 million map pairs); 65536 items bounds allocation and
    # hashing per container (BAD-INPUTS, msgpack section).
    max_container_len: int = _knob(65_536, "most items in one msgpack array or map (tcpy)")
    # Deep nesting costs stack and time for no legitimate message; msgspec and
    # msgpack-java cap at 512, relay at 128, we at 64 (tcpy and pyts).
    max_depth: int = _knob(64, "deepest nesting of arrays and maps in a tcpy or pyts message")
    # JSON and msgpack decode to Python objects that take 2x to 70x their
    # bytes (a 3-byte "[]," is a 72-byte list), so structured bodies get
    # their own limit, far below max_body_size: 64 MiB decodes in well under a
    # second and, within the budget for decoded structures (9x the body:
    # dataserve.core.budget), to at most 576 MiB. Larger data travels as bytes
    # or .npy, which decode in place.
    max_structured_size: int = _knob(
        64 * MiB, "largest JSON or msgpack body accepted, in bytes (413)", "size"
    )
    # h11's default and the de-facto standard (node, tomcat): 16 KiB of headers.
    max_header_size: int = _knob(16 * KiB, "largest request line + headers, in bytes", "size")
    # An absolute deadline for a request's line and headers, from its first
    # byte, never reset per byte (slowloris). HAProxy uses 5 s, CIS advises 10 s.
    header_timeout: float = _knob(10.0, "deadline for a request's headers, in seconds (408)")
    # uvicorn's default keep-alive; an idle HTTP connection is closed after it.
    keepalive_timeout: float = _knob(5.0, "idle HTTP keep-alive timeout")
    # A request body that stops arriving for this long gets 408.
    body_timeout: float = _knob(30.0, "longest wait for more of a request body (408)")
    # Raw TCP: the handshake must complete within this.
    handshake_timeout: float = _knob(10.0, "raw TCP handshake deadline")
    # Raw TCP: a frame whose header arrived must be complete within this.
    frame_timeout: float = _knob(30.0, "raw TCP deadline for the rest of a frame")
    # Raw TCP: a connection with nothing in flight is closed after this.
    idle_timeout: float = _knob(60.0, "raw TCP idle connection timeout")
    # A handler that has not answered in this long gets 504 (HTTP) or an
    # error frame (TCP). A def handler's thread cannot be stopped: it runs on,
    # its answer is dropped.
    handler_timeout: float = _knob(300.0, "longest a handler may take, in seconds (504)")
    # Above this many open connections, HTTP answers 503 and raw TCP refuses.
    max_connections: int = _knob(10_000, "most connections open at once")
    # A client pipelining more requests than this on one connection is not
    # read from until some finish, which bounds the work one peer queues
    # (raw TCP: requests in progress; HTTP: requests read ahead of the answer).
    max_pipelined: int = _knob(256, "requests read ahead or in progress per connection")
    # A peer that takes nothing of a waiting reply for this long is closed and
    # the reply released (nginx's send_timeout is 60 s; progress resets it).
    send_timeout: float = _knob(30.0, "longest a peer may read nothing of a reply, in seconds")
    # def handlers run on this many threads; 1 serialises them like the original
    # single-threaded servers, so handler state needs no locks.
    handler_threads: int = _knob(1, "threads running def handlers at once")
    # A def handler past handler_timeout cannot be stopped: its thread is
    # stuck, and a new one takes its place, as long as no more than this many
    # are stuck at once (then /ready answers 503: the process needs a restart).
    max_stuck_threads: int = _knob(
        8, "handler threads stuck past handler_timeout that are replaced"
    )
    # The buffers of large bodies (1 MiB and more) are kept for reuse once
    # free: a fresh buffer's page faults cost more than copying the body into
    # it (dataserve.core.buffer_cache). The cache never holds more than was
    # in flight at once, and lets go after buffer_linger seconds (jemalloc
    # returns freed memory after 10 s). 0 turns it off.
    buffer_retain: int = _knob(
        1 * GiB, "most bytes of free body buffers kept for reuse (0: none)", "size", zero=True
    )
    buffer_linger: float = _knob(10.0, "seconds a free body buffer is kept for reuse")
    # Graceful shutdown waits this long for in-flight requests.
    shutdown_timeout: float = _knob(30.0, "seconds in-flight requests get at shutdown")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{f.name} must be a number, not {type(value).__name__}")
            if value < 0 or (value == 0 and not f.metadata["zero"]):
                what = "0 or more" if f.metadata["zero"] else "positive"
                raise ValueError(f"{f.name} must be {what}, not {value}")

    def replace(self, **changes: Any) -> Limits:
        return dataclasses.replace(self, **changes)


DEFAULT_LIMITS = Limits()

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}


def parse_size(text: str) -> int:
    """``'100M'`` / ``'1GiB'`` / ``'4096'`` -> bytes (binary units)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 64K, 100M, 1G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def size(text: str) -> int:
    """``parse_size`` as an argparse type: a bad size is the flag's error, named as such."""
    value = size_or_zero(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 byte or more, not {text}")
    return value


def size_or_zero(text: str) -> int:
    """``size``, where 0 is allowed (a knob that 0 turns off)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shown_size(n: int) -> str:
    for suffix, unit in (("G", GiB), ("M", MiB), ("K", KiB)):
        if n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def add_arguments(parser: argparse.ArgumentParser, only: Collection[str] | None = None) -> None:
    """Add one ``--flag`` per ``Limits`` field, defaulting to ``None`` (= unchanged).

    ``only`` limits the flags to these fields (a server that reads only some).
    A bad value is refused by argparse, naming the flag: sizes take binary
    suffixes (``64K``, ``100M``, ``1G``), the rest must be positive.
    """
    group = parser.add_argument_group(
        "limits and timeouts", "sizes in bytes take suffixes: 64K, 100M, 1G; times in seconds"
    )
    for f in fields(Limits):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = f.metadata.get("kind", "")
        default: Any = f.default
        if kind == "size":
            conv: Any = size_or_zero if f.metadata["zero"] else size
            shown, metavar = _shown_size(default), "SIZE"
        elif isinstance(default, int):
            conv, shown, metavar = positive_int, str(default), "N"
        else:
            conv, shown, metavar = positive_float, f"{default:g}", "S"
        group.add_argument(
            flag,
            dest=f.name,
            type=conv,
            default=None,
            metavar=metavar,
            help=f"{f.metadata['help']} (default {shown})",
        )


def limits_from_args(args: argparse.Namespace, base: Limits = DEFAULT_LIMITS) -> Limits:
    """A ``Limits`` from parsed flags; flags not given keep ``base``'s values."""
    changes = {
        f.name: getattr(args, f.name)
        for f in fields(Limits)
        if getattr(args, f.name, None) is not None
    }
    return base.replace(**changes)
