"""The ``dataserve`` command: ``serve`` a handler, ``send`` a payload.

Library code raises; only this module turns errors into one line on stderr
and an exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .core.limits import add_arguments, limits_from_args
from .core.security import TOKEN_ENV, tls_from_args
from .core.security import add_arguments as add_security_arguments
from .ops.config import add_arguments as add_ops_arguments
from .ops.config import ops_from_args

__all__ = ["main"]

EXAMPLE = "dataserve.example:ExampleHandler"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dataserve", description="Serve a Python data handler over HTTP."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve a handler over HTTP")
    serve.add_argument(
        "handler",
        nargs="?",
        default=os.environ.get("DATASERVE_HANDLER") or EXAMPLE,
        help=f"MODULE:ATTR of an HTTPDataHandler subclass, instance or Router "
        f"(default: $DATASERVE_HANDLER, else the seed example, {EXAMPLE})",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=5001, help="port (default 5001; 0 picks one)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--tcp-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve the handler over raw TCP (rawproto native framing) on PORT (0 picks one)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (default info)",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log one line per request (default off)"
    )
    add_ops_arguments(serve)
    add_arguments(serve)
    add_security_arguments(serve)

    send = sub.add_parser("send", help="send a payload and print the decoded answer")
    send.add_argument("url", help="server URL, e.g. http://127.0.0.1:5001")
    send.add_argument("resource", help="resource path, e.g. /xdata")
    body = send.add_mutually_exclusive_group()
    body.add_argument("--json", help="send this JSON value")
    body.add_argument("--text", help="send this string as text/plain")
    body.add_argument(
        "--file",
        type=Path,
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
    send.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    send.add_argument("--token", help=f"bearer token (default: ${TOKEN_ENV})")
    send.add_argument("--ca-file", metavar="FILE", help="trust this CA for https")
    send.add_argument(
        "--insecure", action="store_true", help="do not verify the server's certificate"
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .core.loading import HandlerLoadError, load_handler
    from .serving import run_http_server

    try:
        limits = limits_from_args(args)
        ops = ops_from_args(args)
        tls = tls_from_args(args)
        handler = load_handler(args.handler)
    except (HandlerLoadError, ValueError, TypeError, OSError) as exc:
        print(f"dataserve: error: {exc}", file=sys.stderr)
        return 2

    def banner(url: str) -> None:
        from .ops.logs import announce

        announce(f"Serving {args.handler} on {url}. Press Ctrl-C to stop.", ops.log_format, url=url)
        if args.handler == EXAMPLE and url.startswith("http"):
            announce(
                f"Try: curl -X PUT -H 'Content-Type: application/json' -d '[4, 5, 6]' {url}/xdata",
                ops.log_format,
            )

    try:
        run_http_server(
            args.port,
            args.handler if args.workers > 1 else handler,
            host=args.host,
            limits=limits,
            workers=args.workers,
            log_level=args.log_level,
            access_log=args.access_log,
            banner=banner,
            ops=ops,
            token=args.token,
            tls=tls,
            tcp_port=args.tcp_port,
        )
    except (HandlerLoadError, ValueError) as exc:
        print(f"dataserve: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"dataserve: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


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
    from .core.errors import DataServeError

    payload: Any = None
    if args.json is not None:
        try:
            payload = json.loads(args.json)
        except ValueError as exc:
            print(f"dataserve: error: --json is not valid JSON: {exc}", file=sys.stderr)
            return 2
    elif args.text is not None:
        payload = args.text
    elif args.file is not None:
        # streamed by the client, never read whole
        payload = sys.stdin.buffer if str(args.file) == "-" else args.file
    # A file's reply is streamed as well: it may be as large as the file.
    stream_reply = args.file is not None or args.output is not None
    url = args.url.rstrip("/")
    bars = _ProgressBars(reply_to_terminal=args.output is None and sys.stdout.isatty())
    try:
        client = HTTPDataClient(
            port="",
            address=url,
            timeout=args.timeout,
            token=args.token,
            ca_file=args.ca_file,
            verify=not args.insecure,
        )
        with client:
            if stream_reply:
                into = args.output if args.output is not None else sys.stdout.buffer
                client.send(args.resource, payload, into=into, progress=bars)
                sys.stdout.flush()
                return 0
            result = client.send(args.resource, payload)
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
