"""Our native framing: ``rawproto.serve(HANDLER, 0)``, with the Limits flags."""

from __future__ import annotations

import argparse

import rawproto
from dataserve.core.limits import add_arguments, limits_from_args


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("handler")
    add_arguments(parser)
    args = parser.parse_args()
    rawproto.serve(args.handler, 0, limits=limits_from_args(args))


if __name__ == "__main__":
    main()
