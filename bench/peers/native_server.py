"""Our native framing: ``rawproto.serve(HANDLER, 0)``, with the Limits flags;
``--uds PATH`` serves on that Unix domain socket instead of TCP."""

from __future__ import annotations

import argparse

import rawproto
from dataserve.core.limits import add_arguments, limits_from_args


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("handler")
    parser.add_argument("--uds", default=None)
    add_arguments(parser)
    args = parser.parse_args()
    rawproto.serve(args.handler, 0, limits=limits_from_args(args), uds=args.uds)


if __name__ == "__main__":
    main()
