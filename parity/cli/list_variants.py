"""`resnet-parity list`: every variant with its family, preprocessing, parameters and multiply-accumulates."""

from __future__ import annotations

import resnet_spec as rs


def zoo_table(names: list[str]) -> str:
    """One line per variant: family, block, native size, evaluation preprocessing, parameters
    (trainable), all weights (BatchNorm statistics too, as Keras' count_params counts) and
    multiply-accumulates."""
    header = (f"{'name':<18} {'family':<18} {'block':<18} {'input':>5} {'preprocess':<10} {'params':>13} "
              f"{'weights':>13} {'GMACs':>8}")
    lines = [header, "-" * len(header)]
    for name in names:
        spec = rs.get(name)
        counts = rs.count_parameters(spec)
        lines.append(
            f"{name:<18} {spec.family:<18} {spec.block:<18} {spec.input_size:>5} {spec.preprocessing:<10} "
            f"{counts.params:>13,} {counts.params + counts.buffers:>13,} {rs.count_macs(spec) / 1e9:>8.3f}"
        )
    return "\n".join(lines)


def run(args) -> int:
    print(zoo_table(rs.names(args.family) if args.family else rs.names()))
    return 0


def add_parser(sub):
    p = sub.add_parser("list", help="every variant with its family, parameters and MACs")
    p.add_argument("--family", choices=rs.FAMILIES, help="only this family")
    p.set_defaults(func=run)
    return p
