"""The ``rawproto`` command: ``rawproto serve FRAMING [TARGET]``, for every framing.

* ``native [MODULE:ATTR]``: a data handler, as ``dataserve serve`` takes it
  (default: the seed example), over the native framing; ``--uds PATH``
  serves it on a Unix domain socket instead of TCP.
* ``tinyproto [MODULE:ATTR]``: a ``TinyProtoServer`` (instance or subclass)
  or a ``TinyProtoConnection`` subclass, served as seed 004's server would
  serve it; with no target, an echo server that sends each message back.
* ``tcpy MODULE:SERVER`` / ``pyts MODULE:SERVER``: a ``rawproto.tcpy.TCPServer``
  or ``rawproto.pyts.Server`` built at a module's top level, as the seeds'
  examples build them (their own ``listen()``/``startServer()`` call must sit
  under ``if __name__ == "__main__":``, or importing the module would start it).

Each framing's ``--help`` lists only the flags that apply to it: the limits
it reads, TLS, ``--token`` where the wire format carries one, and
``--handler-threads`` (alias ``--threads``) where handlers run on threads.
Flags override what the module set. Library code raises; only this module
turns errors into one line on stderr and an exit status, as ``dataserve``
does: 2 for a bad command line, 1 when the server cannot listen.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dataserve.core.endpoint import Endpoint
from dataserve.core.flags import Parser, positive_int
from dataserve.core.limits import add_arguments, limits_from_args
from dataserve.core.loading import LoadError, import_object
from dataserve.core.net import DEFAULT_HOST

from . import __version__

__all__ = ["main"]

# The limits every framing reads: the engine's, which runs them all.
_ENGINE = ("max_connections", "handshake_timeout", "frame_timeout", "idle_timeout", "send_timeout")
# --handler-threads is a flag of its own (alias --threads): the facades keep
# the number in their ``threads`` attribute as well.
_HANDLERS = ("handler_timeout", "shutdown_timeout")


@dataclass(frozen=True)
class _Framing:
    """How ``rawproto serve`` serves one framing."""

    help: str
    target: str  # what TARGET names
    required: bool  # whether TARGET must be given
    limits: tuple[str, ...]  # the Limits fields it reads: its limit flags
    token: bool  # the wire format carries a bearer token
    threads: bool  # handlers run on a pool of threads (--handler-threads)
    default_port: int | None  # None: the server object's own
    run: Callable[[Any, argparse.Namespace], None]


class _ListenError(Exception):
    """The server could not listen: says where."""


def _listening(where: str, run: Callable[[], None]) -> None:
    try:
        run()
    except OSError as exc:
        raise _ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from exc


# --- native -------------------------------------------------------------------

_EXAMPLE = "dataserve.example:ExampleHandler"


def _run_native(spec: Any, args: argparse.Namespace) -> None:
    from dataserve.core.loading import load_handler

    from . import serve

    handler = load_handler(spec or _EXAMPLE)
    limits = limits_from_args(args)
    endpoint = Endpoint.from_args(args)

    def banner(url: str) -> None:
        print(f"Serving {spec or _EXAMPLE} on {url}. Press Ctrl-C to stop.", flush=True)

    _listening(
        endpoint.where,
        lambda: serve(handler, endpoint=endpoint, limits=limits, banner=banner),
    )


# --- tinyproto ------------------------------------------------------------------


def _echo_connection() -> type:
    from .tinyproto import TinyProtoConnection

    class EchoConnection(TinyProtoConnection):
        """Sends each message back as it came."""

        def transmission_received(self, msg: bytearray) -> None:
            self.transmit(msg)

    return EchoConnection


def _tinyproto_server(spec: str | None) -> Any:
    """The ``TinyProtoServer`` a target names (an echo server for none)."""
    from .tinyproto import TinyProtoConnection, TinyProtoServer

    if spec is None:
        return TinyProtoServer(connection_handler=_echo_connection())
    obj = import_object(spec, "the server")
    if isinstance(obj, TinyProtoServer):
        return obj
    if isinstance(obj, type) and issubclass(obj, TinyProtoServer):
        return obj()
    if isinstance(obj, type) and issubclass(obj, TinyProtoConnection):
        return TinyProtoServer(connection_handler=obj)
    raise LoadError(
        f"{spec} is a {type(obj).__name__}, not a rawproto.tinyproto.TinyProtoServer "
        "or a TinyProtoConnection subclass"
    )


def _endpoint(args: argparse.Namespace, host: Any, port_: Any, tls: Any) -> Endpoint:
    """The endpoint the flags say, over the server object's own address and TLS."""
    return Endpoint.from_args(args, Endpoint(str(host), int(port_), tls=tls))


def _run_tinyproto(server: Any, args: argparse.Namespace) -> None:
    host, wanted = server.listen_addrs[0] if server.listen_addrs else (DEFAULT_HOST, 9123)
    endpoint = _endpoint(args, host, wanted, server.tls)
    if args.host is not None or args.port is not None or not server.listen_addrs:
        # The flags replace the module's addresses; a server with none gets the defaults.
        server.listen_addrs = []
        server.add_addr(endpoint.host, endpoint.port)
    server.limits = limits_from_args(args, server.limits)
    server.tls = endpoint.tls
    pre_loop = server.pre_loop

    def announce() -> None:  # the bound ports are known once pre_loop runs
        for (host, _), bound in zip(server.listen_addrs, server.ports, strict=True):
            print(f"Serving tinyproto on tcp://{host}:{bound}. Press Ctrl-C to stop.", flush=True)
        pre_loop()

    server.pre_loop = announce
    host, wanted = server.listen_addrs[0]
    _listening(Endpoint(str(host), int(wanted)).where, server.start)


# --- tcpy and pyts ----------------------------------------------------------------


def _threads(server: Any, args: argparse.Namespace) -> None:
    """One flag sets both: the facades build their handler pool from ``threads``."""
    if args.handler_threads is not None:
        server.threads = args.handler_threads
    server.limits = limits_from_args(args, server.limits).replace(handler_threads=server.threads)


def _run_tcpy(server: Any, args: argparse.Namespace) -> None:
    endpoint = _endpoint(args, server.host, server.port, server.tls)
    server.host, server.port, server.tls = endpoint.host, endpoint.port, endpoint.tls
    _threads(server, args)
    _listening(endpoint.where, server.listen)


def _run_pyts(server: Any, args: argparse.Namespace) -> None:
    endpoint = _endpoint(args, server.HOST, server.PORT, server.tls)
    server.HOST, server.PORT, server.tls = endpoint.host, endpoint.port, endpoint.tls
    _threads(server, args)
    _listening(endpoint.where, server.startServer)


def _loader(module: str, name: str) -> Callable[[str], Any]:
    def load(spec: str) -> Any:
        import importlib

        expected = getattr(importlib.import_module(module), name)
        obj = import_object(spec, "the server")
        if not isinstance(obj, expected):
            raise LoadError(f"{spec} is a {type(obj).__name__}, not a {module}.{name}")
        return obj

    return load


_FRAMINGS: dict[str, tuple[_Framing, Callable[[Any], Any]]] = {
    "native": (
        _Framing(
            help="a data handler over the native framing (the HTTP handler, over TCP)",
            target=f"MODULE:ATTR of a data handler, as dataserve serve takes it "
            f"(default: the seed example, {_EXAMPLE})",
            required=False,
            limits=(
                *_ENGINE,
                *_HANDLERS,
                "max_frame_size",
                "max_pipelined",
                "max_structured_size",
                "max_container_len",
                "max_depth",
                "max_stuck_threads",
                "buffer_retain",
                "buffer_linger",
            ),
            token=True,
            threads=True,
            default_port=5002,
            run=_run_native,
        ),
        lambda spec: spec,  # loaded by _run_native, after the flags are read
    ),
    "tinyproto": (
        _Framing(
            help="a tinyproto server (seed 004); an echo server with no target",
            target="MODULE:ATTR of a TinyProtoServer (instance or subclass) or a "
            "TinyProtoConnection subclass (default: echo each message back)",
            required=False,
            limits=(*_ENGINE, "shutdown_timeout", "max_frame_size"),
            token=False,
            threads=False,  # each connection's hooks run on its own thread
            default_port=None,  # the server's address, else 127.0.0.1:9123
            run=_run_tinyproto,
        ),
        _tinyproto_server,
    ),
    "tcpy": (
        _Framing(
            help="a tcpy server object (seed 002)",
            target="MODULE:ATTR of a rawproto.tcpy.TCPServer",
            required=True,
            limits=(
                *_ENGINE,
                *_HANDLERS,
                "max_frame_size",
                "max_structured_size",
                "max_container_len",
                "max_depth",
            ),
            token=False,
            threads=True,
            default_port=None,
            run=_run_tcpy,
        ),
        _loader("rawproto.tcpy", "TCPServer"),
    ),
    "pyts": (
        _Framing(
            help="a pyts server object (seed 000)",
            target="MODULE:ATTR of a rawproto.pyts.Server",
            required=True,
            limits=(*_ENGINE, *_HANDLERS, "max_body_size", "max_structured_size", "max_depth"),
            token=False,
            threads=True,
            default_port=None,
            run=_run_pyts,
        ),
        _loader("rawproto.pyts", "Server"),
    ),
}


def _add_framing(sub: Any, name: str, framing: _Framing) -> None:
    p = sub.add_parser(name, help=framing.help, description=f"Serve {framing.help}.")
    metavar = {"native": "HANDLER", "tinyproto": "TARGET"}.get(name, "SERVER")
    p.add_argument(
        "target",
        nargs=None if framing.required else "?",
        metavar=metavar,
        help=framing.target,
    )
    # native serves the handler it loads; the others, a server object with an address.
    native = name == "native"
    Endpoint.add_arguments(
        p,
        host=DEFAULT_HOST if native else None,
        port=framing.default_port,
        uds_clients="RawDataClient(uds=PATH)" if native else None,
        token=framing.token,
    )
    if framing.threads:
        p.add_argument(
            "--handler-threads",
            "--threads",
            dest="handler_threads",
            type=positive_int,
            default=None,
            metavar="N",
            help="handlers running at once (default 1)",
        )
    add_arguments(p, only=framing.limits)


def _parser() -> Parser:
    parser = Parser(prog="rawproto", description="Serve raw TCP framings on the rawproto engine.")
    parser.add_argument("--version", action="version", version=f"rawproto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{serve}")
    serve = sub.add_parser(
        "serve",
        help="serve a framing: native, tinyproto, tcpy or pyts",
        description="Serve one framing; `rawproto serve FRAMING --help` lists its flags.",
    )
    framings = serve.add_subparsers(
        dest="framing", required=True, metavar="{" + ",".join(_FRAMINGS) + "}"
    )
    for name, (framing, _) in _FRAMINGS.items():
        _add_framing(framings, name, framing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    framing, load = _FRAMINGS[args.framing]
    try:
        server = load(args.target)
        framing.run(server, args)
    except _ListenError as exc:
        print(f"rawproto: error: {exc}", file=sys.stderr)
        return 1
    except (LoadError, ValueError, TypeError, OSError) as exc:
        print(f"rawproto: error: {exc}", file=sys.stderr)
        return 2
    return 0
