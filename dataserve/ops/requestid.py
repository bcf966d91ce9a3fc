"""Request ids: taken from ``X-Request-ID`` when it is sane, generated otherwise.

The id of the request being handled is in a context variable, so a handler
reads it with ``dataserve.request_id()`` whether it is ``async def`` (same
task) or ``def`` (the handler pool runs each call in a copy of the caller's
context).
"""

from __future__ import annotations

import contextvars
import itertools
import os
import re

__all__ = ["HEADER", "new_request_id", "pick_request_id", "request_id"]

HEADER = b"x-request-id"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dataserve_request_id", default=None
)

# A client's id is echoed in a reply header and written to logs, so only
# visible ASCII without quotes or backslashes is taken (no header or log
# injection, BAD-INPUTS H29), and 128 bytes are plenty for a UUID or a trace id.
_SANE = re.compile(rb"[!#-\[\]-~]{1,128}")

# A random per-process prefix and a counter: unique across processes and
# replicas for all practical purposes, and far cheaper than uuid4 per request.
_prefix = os.urandom(6).hex()
_counter = itertools.count(1)


def _reseed() -> None:
    # A forked child must not repeat its parent's ids.
    global _prefix, _counter
    _prefix = os.urandom(6).hex()
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """A fresh id: 12 random hex digits, a dash, a per-process counter."""
    return f"{_prefix}-{next(_counter):x}"


def pick_request_id(value: bytes | None) -> str:
    """The client's ``X-Request-ID`` if it is sane, else a new id."""
    if value is not None and _SANE.fullmatch(value):
        return value.decode("ascii")
    return new_request_id()


def request_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request.

    Available in the handler (``def`` or ``async def``) when request ids are
    on (the default); the same id is in the reply's ``X-Request-ID`` header
    and in the access log line.
    """
    return _current.get()


def set_request_id(value: str | None) -> contextvars.Token[str | None]:
    return _current.set(value)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _current.reset(token)
