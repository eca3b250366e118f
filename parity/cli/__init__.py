"""parity's top floor: the `resnet-parity` command line, one module per subcommand.

This is the only place that knows about usage errors and exit statuses. Subcommand modules are
light: each imports its frameworks when it runs, so `resnet-parity list` needs neither torch nor
TensorFlow. An expected error prints one paragraph and exits 2, without a traceback; the
frameworks' native start-up notes are kept off the terminal unless --verbose is given.
"""

from __future__ import annotations

import argparse
import sys

from . import check, convert, demo, export, export_onnx, list_variants, predict, train_parity
from .errors import UsageError, expected_errors
from .quiet import filtered_stderr

COMMANDS = (list_variants, check, convert, export, export_onnx, predict, train_parity, demo)

__all__ = ["UsageError", "build_parser", "expected_errors", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnet-parity",
        description="The ResNet family in PyTorch and Keras 3 from one spec, and proof that they agree.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = command.add_parser(sub)
        if not any("--verbose" in action.option_strings for action in p._actions):
            p.add_argument("--verbose", action="store_true", help="also show the frameworks' own log lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with filtered_stderr(enabled=not args.verbose):
            return args.func(args)
    except expected_errors() as err:
        print(f"resnet-parity {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0
