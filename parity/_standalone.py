"""Run one subcommand module on its own (`python -m parity.predict ...`) with the error
handling of the `resnet-parity` command, for modules not (yet) wired into parity.cli."""

from __future__ import annotations

import argparse
import sys


def run(add_parser, argv=None) -> int:
    from .cli import expected_errors

    parser = argparse.ArgumentParser(prog="resnet-parity")
    name = add_parser(parser.add_subparsers(dest="command", required=True)).prog.split()[-1]
    args = parser.parse_args([name, *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except expected_errors() as err:
        print(f"resnet-parity {name}: error: {err}", file=sys.stderr)
        return 2
