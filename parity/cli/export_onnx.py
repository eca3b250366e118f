"""`resnet-parity export-onnx`: ONNX from either framework, checked in ONNX Runtime against both."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.frameworks import FRAMEWORKS


def run(args) -> int:
    from ..apps.onnx_export import export_onnx
    from ..core.report import VerificationError

    try:
        result = export_onnx(args.source, args.dst, framework=args.framework, arch=args.arch,
                             num_classes=args.num_classes, size=args.size, force=args.force)
    except VerificationError as err:
        print(err.report.table())
        print(f"resnet-parity export-onnx: {err}", file=sys.stderr)
        return 1
    print(result.report.table())
    layout = "NCHW" if args.framework == "torch" else "NHWC"
    print(f"wrote {result.dst}: input {layout} with a dynamic batch axis; onnx.checker passed")
    return 0


def add_parser(sub):
    p = sub.add_parser(
        "export-onnx",
        help="export to ONNX from either framework, checked in ONNX Runtime against both",
        description="Export SRC (a checkpoint, a .keras file, or a variant name for seeded random "
        "weights) to ONNX with a dynamic batch axis, check it with onnx.checker, run it in ONNX "
        "Runtime and compare with both frameworks (1e-5 relative); exit 1 if they disagree.",
    )
    p.add_argument("source", metavar="SRC")
    p.add_argument("dst", type=Path, metavar="DST")
    p.add_argument("--framework", choices=FRAMEWORKS, default="torch",
                   help="the exporter (torch: NCHW input; keras: NHWC input)")
    p.add_argument("--arch", metavar="NAME", help="the architecture (default: inferred)")
    p.add_argument("--num-classes", type=int, metavar="N")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input size (default: the variant's own)")
    p.add_argument("--force", action="store_true", help="overwrite an existing DST")
    p.set_defaults(func=run)
    return p
