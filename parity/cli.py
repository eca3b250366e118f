"""The `resnet-parity` command line.

Subcommands import their framework lazily, so `resnet-parity list` needs neither torch nor
TensorFlow, and an expected error prints one paragraph and exits non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import sys

import resnet_spec as rs


class UsageError(Exception):
    """An expected error: printed as one paragraph, exit status 2."""


def zoo_table(names: list[str]) -> str:
    """One line per variant: family, parameters, buffers and multiply-accumulates at its native size."""
    header = f"{'name':<18} {'family':<12} {'block':<18} {'input':>5} {'params':>13} {'GMACs':>8}"
    lines = [header, "-" * len(header)]
    for name in names:
        spec = rs.get(name)
        counts = rs.count_parameters(spec)
        lines.append(
            f"{name:<18} {spec.family:<12} {spec.block:<18} {spec.input_size:>5} "
            f"{counts.params:>13,} {rs.count_macs(spec) / 1e9:>8.3f}"
        )
    return "\n".join(lines)


def _cmd_list(args) -> int:
    names = rs.names(args.family) if args.family else rs.names()
    print(zoo_table(names))
    return 0


def _cmd_demo(args) -> int:
    print("resnet-parity: every variant, from one spec (parameters and MACs computed from the spec)\n")
    print(zoo_table(rs.names()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnet-parity",
        description="The ResNet family in PyTorch and Keras 3 from one spec, and proof that they agree.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="every variant with its family, parameters and MACs")
    p.add_argument("--family", choices=rs.FAMILIES, help="only this family")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("demo", help="the built-in demonstration run by `make demo`")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, rs.SpecError, rs.UnknownArchitecture) as err:
        print(f"resnet-parity {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
