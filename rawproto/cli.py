"""The ``rawproto`` command: ``rawproto serve tcpy|pyts MODULE:SERVER``.

``MODULE:SERVER`` names a ``rawproto.tcpy.TCPServer`` or a
``rawproto.pyts.Server`` built at a module's top level, as the seeds' examples
build them (their own ``listen()``/``startServer()`` call must sit under
``if __name__ == "__main__":``, or importing the module would start it).
``--host``, ``--port``, ``--threads``, the TLS flags (``--tls-cert``,
``--tls-key``, ``--tls-client-ca``) and every limit flag override what the
module set. Library code raises; only this module turns errors into one line
on stderr and an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dataserve.core.limits import add_arguments, limits_from_args
from dataserve.core.loading import LoadError, import_object
from dataserve.core.security import tls_from_args

__all__ = ["main"]


def _run_tcpy(server: Any, args: argparse.Namespace) -> None:
    if args.host is not None:
        server.host = args.host
    if args.port is not None:
        server.port = args.port
    if args.threads is not None:
        server.threads = args.threads
    server.limits = limits_from_args(args, server.limits)
    server.tls = tls_from_args(args) or server.tls
    server.listen()


def _run_pyts(server: Any, args: argparse.Namespace) -> None:
    if args.host is not None:
        server.HOST = args.host
    if args.port is not None:
        server.PORT = args.port
    if args.threads is not None:
        server.threads = args.threads
    server.limits = limits_from_args(args, server.limits)
    server.tls = tls_from_args(args) or server.tls
    server.startServer()


# framing -> (the server class it expects, by the name users import it by; how to run one)
_FRAMINGS: dict[str, tuple[str, Callable[[Any, argparse.Namespace], None]]] = {
    "tcpy": ("rawproto.tcpy.TCPServer", _run_tcpy),
    "pyts": ("rawproto.pyts.Server", _run_pyts),
}


def _load(spec: str, expected: str) -> Any:
    """The server object ``spec`` names, checked to be an instance of ``expected``."""
    module, _, name = expected.rpartition(".")
    # Imported only now: the framing asked for is the only one loaded.
    server_class = getattr(importlib.import_module(module), name)
    obj = import_object(spec, "the server")
    if not isinstance(obj, server_class):
        raise LoadError(f"{spec} is a {type(obj).__name__}, not a {expected}")
    return obj


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rawproto", description="Serve raw TCP framings on the rawproto engine."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a tcpy or pyts server object")
    serve.add_argument("framing", choices=sorted(_FRAMINGS), help="the wire format")
    serve.add_argument(
        "server", help="MODULE:ATTR of a rawproto.tcpy.TCPServer or rawproto.pyts.Server"
    )
    serve.add_argument("--host", help="address to bind (default: the server object's)")
    serve.add_argument("--port", type=int, help="port (default: the server object's; 0 picks one)")
    serve.add_argument(
        "--threads", type=int, help="handlers running at once (the same as --handler-threads)"
    )
    tls = serve.add_argument_group("TLS (the wire formats have no token)")
    tls.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this PEM certificate")
    tls.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key")
    tls.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="require client certificates signed by this CA (mutual TLS)",
    )
    add_arguments(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    server_class, run = _FRAMINGS[args.framing]
    try:
        server = _load(args.server, server_class)
        run(server, args)
    except (LoadError, ValueError, TypeError, OSError) as exc:
        print(f"rawproto: error: {exc}", file=sys.stderr)
        return 2
    return 0
