"""Logs: the access log line, text (uvicorn's style) or JSON, and the logging config.

Lifecycle and error messages go through stdlib ``logging`` (loggers
``dataserve.*``, ``rawproto.*`` and uvicorn's) to stderr; access lines go to
the ``dataserve.access`` logger, on stdout, as uvicorn's do. ``log_config``
builds the ``logging.config.dictConfig`` dict for both formats; uvicorn
applies it in every worker process.
"""

from __future__ import annotations

import datetime
import http
import logging
import sys
import urllib.parse
from typing import Any

import orjson

__all__ = ["ACCESS_LOGGER", "JSONFormatter", "access", "announce", "log_config"]

ACCESS_LOGGER = "dataserve.access"
_access = logging.getLogger(ACCESS_LOGGER)

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def access(
    scope: Any,
    status: int,
    bytes_out: int,
    bytes_in: int,
    duration: float,
    request_id: str | None,
) -> None:
    """Log one HTTP request: ``127.0.0.1:5678 - "PUT /x HTTP/1.1" 200 OK 17B 0.42ms ID``."""
    client = scope.get("client")
    addr = f"{client[0]}:{client[1]}" if client else "-"
    path = scope["path"]
    # Quoted as uvicorn does: a path cannot put control characters or a
    # fake second line into a text log (BAD-INPUTS H29).
    shown = urllib.parse.quote(path)
    if scope.get("query_string"):
        shown += "?" + scope["query_string"].decode("ascii", "replace")
    method = scope["method"]
    _access.info(
        '%s - "%s %s HTTP/%s" %d %s %dB %.2fms %s',
        addr,
        method,
        shown,
        scope["http_version"],
        status,
        _phrase(status),
        bytes_out,
        duration * 1000,
        request_id or "-",
        extra={
            "client": addr,
            "method": method,
            "resource": path,
            "status": status,
            "bytes": bytes_out,
            "bytes_in": bytes_in,
            "duration": round(duration, 6),
            "request_id": request_id,
        },
    )


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                doc[key] = value
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def log_config(log_format: str = "text", log_level: str = "info") -> dict[str, Any]:
    """A ``dictConfig`` dict for uvicorn's and dataserve's loggers."""
    level = log_level.upper()
    if log_format == "json":
        formatters: dict[str, Any] = {
            "default": {"()": f"{__name__}.JSONFormatter"},
            "access": {"()": f"{__name__}.JSONFormatter"},
        }
    else:
        formatters = {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": None,
            },
            "access": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": None,
            },
        }
    quiet = {"handlers": [], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            # dataserve writes its own access lines; uvicorn's would double them.
            "uvicorn.access": quiet,
            "dataserve": {"handlers": ["default"], "level": level, "propagate": False},
            ACCESS_LOGGER: {"handlers": ["access"], "level": level, "propagate": False},
            "rawproto": {"handlers": ["default"], "level": level, "propagate": False},
        },
    }


def announce(message: str, log_format: str = "text", **fields: Any) -> None:
    """Print a start-up line on stdout: as it is, or as a JSON log object."""
    if log_format == "json":
        now = datetime.datetime.now(datetime.timezone.utc)
        doc = {
            "time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": "INFO",
            "logger": "dataserve",
            "message": message,
            **fields,
        }
        line = orjson.dumps(doc, default=str).decode()
    else:
        line = message
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
