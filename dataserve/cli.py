"""The ``dataserve`` command: ``serve`` a handler, ``send`` a payload.

Library code raises; only this module turns errors into one line on stderr
and an exit status: 2 for a bad command line (a flag's value, a handler that
does not load), 1 for a failure at run time (the port is taken, the server
does not answer). Every ``serve`` flag may also be set in the environment as
``DATASERVE_<FLAG>``; the names are derived from the flags themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .core.endpoint import Endpoint
from .core.flags import (
    Parser,
    apply_environment,
    port,
    positive_float,
    positive_int,
    readable_file,
)
from .core.limits import add_arguments, limits_from_args
from .core.net import DEFAULT_HOST, is_loopback
from .core.security import TOKEN_ENV
from .ops.config import add_arguments as add_ops_arguments
from .ops.config import ops_from_args

__all__ = ["main"]

EXAMPLE = "dataserve.example:ExampleHandler"
#: Where ``dataserve serve`` listens unless told otherwise (seed 001's port).
DEFAULT_PORT = 5001
#: Environment variables of ``serve``'s flags: ``DATASERVE_`` + the flag's name.
ENV_PREFIX = "DATASERVE"
_LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]


def _log_level(text: str) -> str:
    return text.lower()  # INFO, Info and info alike, as logging takes them


def _serve_parser(sub: Any) -> argparse.ArgumentParser:
    serve: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="serve a handler over HTTP",
        description="Serve a Python data handler over HTTP (and raw TCP with --tcp-port).",
        epilog=f"Every flag may also be set in the environment as {ENV_PREFIX}_<FLAG> "
        f"(--max-body-size as {ENV_PREFIX}_MAX_BODY_SIZE, on/off flags as 1 or 0, the "
        f"handler as {ENV_PREFIX}_HANDLER); the command line wins.",
    )
    serve.add_argument(
        "handler",
        nargs="?",
        default=EXAMPLE,
        help=f"MODULE:ATTR of an HTTPDataHandler subclass, instance or Router "
        f"(default: the seed example, {EXAMPLE})",
    )
    Endpoint.add_arguments(
        serve,
        host=DEFAULT_HOST,
        port=DEFAULT_PORT,
        uds_clients="HTTPDataClient(uds=PATH), curl --unix-socket PATH",
    )
    serve.add_argument(
        "--workers", type=positive_int, default=1, metavar="N", help="worker processes (default 1)"
    )
    serve.add_argument(
        "--tcp-port",
        type=port,
        default=None,
        metavar="PORT",
        help="also serve the handler over raw TCP (rawproto native framing) on PORT (0 picks one)",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart when a .py file under the working directory changes (development)",
    )
    serve.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="the path prefix a proxy serves this server under, e.g. /api (default none)",
    )
    serve.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-For and X-Forwarded-Proto from --forwarded-allow-ips (default on)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        metavar="IPS",
        help="comma-separated addresses (or *) whose proxy headers are trusted "
        "(default $FORWARDED_ALLOW_IPS, else 127.0.0.1)",
    )
    logs = serve.add_argument_group("logging")
    logs.add_argument(
        "--log-level",
        type=_log_level,
        default="info",
        choices=_LOG_LEVELS,
        help="log level, in any case (default info)",
    )
    logs.add_argument(
        "--log-config",
        type=readable_file,
        default=None,
        metavar="FILE",
        help="logging configuration file (.json, .yaml or .ini), instead of dataserve's",
    )
    logs.add_argument(
        "--access-log", action="store_true", help="log one line per request (default off)"
    )
    add_ops_arguments(serve)
    add_arguments(serve)
    return serve


def _file_or_stdin(text: str) -> Path:
    """``-`` (standard input) or the path of a readable file."""
    return Path(text) if text == "-" else readable_file(text)


def _send_parser(sub: Any) -> None:
    send = sub.add_parser(
        "send",
        help="send a payload and print the decoded answer",
        description="Send a payload to a resource and print the decoded answer. The resource "
        "is the URL's path (dataserve send http://127.0.0.1:5001/xdata) or a second argument "
        "(dataserve send http://127.0.0.1:5001 /xdata).",
    )
    send.add_argument("url", help="the server's URL, with or without the resource's path")
    send.add_argument("resource", nargs="?", help="resource path, e.g. /xdata")
    body = send.add_mutually_exclusive_group()
    body.add_argument("--json", help="send this JSON value")
    body.add_argument("--text", help="send this string as text/plain")
    body.add_argument(
        "--file",
        type=_file_or_stdin,
        help="send this file's bytes, streamed ('-' reads standard input); "
        "the reply is streamed too, to -o FILE or standard output",
    )
    send.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the reply's body to FILE as the server sent it, streamed",
    )
    send.add_argument(
        "--timeout", type=positive_float, default=30.0, metavar="S", help="seconds (default 30)"
    )
    send.add_argument("--token", help=f"bearer token (default: ${TOKEN_ENV})")
    send.add_argument("--ca-file", type=readable_file, metavar="FILE", help="trust this CA")
    send.add_argument(
        "--insecure", action="store_true", help="do not verify the server's certificate"
    )


def _parser() -> Parser:
    parser = Parser(prog="dataserve", description="Serve a Python data handler over HTTP.")
    parser.add_argument("--version", action="version", version=f"dataserve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{serve,send}")
    serve = _serve_parser(sub)
    _send_parser(sub)
    apply_environment(serve, ENV_PREFIX)
    return parser


def _local(url: str) -> str:
    """``url`` with a wildcard host made one a local client can connect to."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in ("0.0.0.0", ""):
        return url.replace(f"//{parts.netloc}", f"//127.0.0.1:{parts.port}", 1)
    if host == "::":
        return url.replace(f"//{parts.netloc}", f"//[::1]:{parts.port}", 1)
    return url


def _warn(message: str) -> None:
    print(f"dataserve: warning: {message}", file=sys.stderr, flush=True)


def _serve(args: argparse.Namespace) -> int:
    from .core.loading import HandlerLoadError, load_handler
    from .serving import run_http_server

    try:
        limits = limits_from_args(args)
        ops = ops_from_args(args)
        endpoint = Endpoint.from_args(args)
        handler = load_handler(args.handler)
    except (HandlerLoadError, ValueError, TypeError, OSError) as exc:
        print(f"dataserve: error: {exc}", file=sys.stderr)
        return 2
    token = endpoint.token if endpoint.token is not None else os.environ.get(TOKEN_ENV)
    if not is_loopback(endpoint.host) and not token and endpoint.tls is None:
        _warn(
            f"--host {endpoint.host} serves other machines without --token or TLS: anyone "
            "who reaches the port can call the handler (see docs/security.md)"
        )

    def banner(url: str) -> None:
        from .ops.logs import announce

        announce(f"Serving {args.handler} on {url}. Press Ctrl-C to stop.", ops.log_format, url=url)
        if args.handler == EXAMPLE and url.startswith(("http", "unix:")):
            where = (
                f"--unix-socket {url[5:]} http://localhost"
                if url.startswith("unix:")
                else _local(url)
            )
            announce(
                "Try: curl -X PUT -H 'Content-Type: application/json' -d '[4, 5, 6]' "
                f"{where}/xdata",
                ops.log_format,
            )

    try:
        run_http_server(
            data_handler=args.handler if args.workers > 1 or args.reload else handler,
            endpoint=endpoint,
            limits=limits,
            workers=args.workers,
            log_level=args.log_level,
            access_log=args.access_log,
            banner=banner,
            ops=ops,
            tcp_port=args.tcp_port,
            root_path=args.root_path,
            proxy_headers=args.proxy_headers,
            forwarded_allow_ips=args.forwarded_allow_ips,
            log_config=None if args.log_config is None else str(args.log_config),
            reload=args.reload,
        )
    except (HandlerLoadError, ValueError) as exc:
        print(f"dataserve: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"dataserve: error: cannot listen on {endpoint.where}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def _target(args: argparse.Namespace) -> tuple[str, str]:
    """``(base URL, resource)`` from ``URL RESOURCE`` or a single ``URL/RESOURCE``."""
    url = args.url
    if "://" not in url:
        raise ValueError(f"argument url: {url!r} is not a URL (http://HOST:PORT/RESOURCE)")
    if args.resource is not None:
        return url.rstrip("/"), args.resource
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        raise ValueError(
            f"argument url: {url!r} names no resource: give it as a path "
            f"({url.rstrip('/')}/xdata) or as a second argument"
        )
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}", resource


class _ProgressBars:
    """``send``'s progress callback: a bar per direction on stderr, for
    transfers of a few MB or more, only when stderr is a terminal (never in a
    pipe or a log). A reply written to a terminal gets no bar of its own, so
    the two never interleave."""

    #: Below this a transfer is over before a bar would say anything.
    MIN_SIZE = 4 << 20

    def __init__(self, reply_to_terminal: bool) -> None:
        self.enabled = sys.stderr.isatty()
        self.reply_to_terminal = reply_to_terminal
        self.direction = ""
        self.shown = 0
        self.bar: Any = None

    def __call__(self, direction: str, done: int, total: int | None) -> None:
        if not self.enabled or (direction == "receive" and self.reply_to_terminal):
            return
        if direction != self.direction:
            self.close()
            self.direction = direction
        if self.bar is None:
            if max(done, total or 0) < self.MIN_SIZE:
                return
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc="sent" if direction == "send" else "received",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=True,
            )
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
        self.shown = 0


def _send(args: argparse.Namespace) -> int:
    from .client import HTTPDataClient
    from .core.client_options import ClientOptions
    from .core.errors import DataServeError

    payload: Any = None
    try:
        base, resource = _target(args)
        if args.json is not None:
            try:
                payload = json.loads(args.json)
            except ValueError as exc:
                raise ValueError(f"argument --json: not valid JSON: {exc}") from None
        elif args.text is not None:
            payload = args.text
        elif args.file is not None:
            # streamed by the client, never read whole
            payload = sys.stdin.buffer if str(args.file) == "-" else args.file
    except (ValueError, OSError) as exc:
        print(f"dataserve: error: {exc}", file=sys.stderr)
        return 2
    # A file's reply is streamed as well: it may be as large as the file.
    stream_reply = args.file is not None or args.output is not None
    bars = _ProgressBars(reply_to_terminal=args.output is None and sys.stdout.isatty())
    try:
        options = ClientOptions.with_timeout(
            args.timeout, token=args.token, ca_file=args.ca_file, verify=not args.insecure
        )
        client = HTTPDataClient(port="", address=base, options=options)
        with client:
            if stream_reply:
                into = args.output if args.output is not None else sys.stdout.buffer
                client.send(resource, payload, into=into, progress=bars)
                sys.stdout.flush()
                return 0
            result = client.send(resource, payload)
    except DataServeError as exc:
        print(f"dataserve: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the file to send or the one to write
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"dataserve: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        bars.close()
    if isinstance(result, (bytes, bytearray)):
        sys.stdout.buffer.write(result)
        sys.stdout.flush()
    elif isinstance(result, str):
        print(result)
    else:
        print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _send(args)
