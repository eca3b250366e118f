"""`resnet-parity export`: a deployment file (ONNX, LiteRT, SavedModel, torch.export), checked
in its own runtime against both frameworks before it takes its name."""

from __future__ import annotations

import sys

from ..apps.export.formats import FORMATS, QUANTIZATIONS  # light: no framework
from ..core.frameworks import FRAMEWORKS
from .sources import add_reading_arguments


def run(args) -> int:
    """Refuse a bad request before the frameworks load, then export, print the check's table and
    say what was written; exit 1 if the file disagrees with the frameworks. Serves export-onnx
    too, which sets format="onnx"."""
    from ..apps.export import formats

    formats.check_request(args.dst, args.format, args.framework, args.quantize, args.force)
    from ..apps.export import flow  # loads both frameworks
    from ..core.report import VerificationError

    try:
        result = flow.export(args.source, args.dst, args.format, args.framework, args.size, args.quantize,
                             force=args.force, arch=args.arch, num_classes=args.num_classes, key=args.key,
                             prefix=args.prefix)
    except VerificationError as err:
        print(err.report.table())
        print(f"resnet-parity {args.command}: {err}", file=sys.stderr)
        return 1
    print(result.report.table())
    print(result.summary())
    return 0


def add_common_arguments(p, quantize: bool = True) -> None:
    """SRC, DST and the options every export takes."""
    p.add_argument("source", metavar="SRC", help="a checkpoint, a .keras file, or a variant name (seeded random weights)")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--framework", choices=FRAMEWORKS, default=None,
                   help="the exporter: torch (NCHW input) or keras (NHWC input); default: the format's own "
                   "(onnx, pt2: torch; tflite, savedmodel: keras)")
    p.add_argument("--arch", metavar="NAME", help="the architecture (default: inferred)")
    p.add_argument("--num-classes", type=int, metavar="N")
    add_reading_arguments(p)
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"),
                   help="fix the input's height and width (default: free, as is the batch)")
    if quantize:
        p.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                       help="tflite only: float16 weights, or dynamic-range int8")
    p.add_argument("--force", action="store_true", help="overwrite an existing DST")


def add_parser(sub):
    p = sub.add_parser(
        "export",
        help="export to ONNX, LiteRT (TFLite), TF SavedModel or torch.export, checked in its runtime",
        description="Export SRC (a checkpoint, a .keras file, or a variant name for seeded random weights) "
        "to DST with a dynamic batch, height and width (--size fixes height and width). The format comes "
        "from DST's name: .onnx, .tflite, .pt2, or a trailing '/' for a SavedModel directory; or from "
        "--format. The file is run in its own runtime (ONNX Runtime, the LiteRT interpreter, "
        "tf.saved_model.load, torch.export.load) and compared with both frameworks (1e-5 relative; a "
        "quantized LiteRT file by its stated bounds, with top-1/top-5 agreement on real images) before "
        "it takes DST's name; exit 1 if it disagrees.",
    )
    add_common_arguments(p)
    p.add_argument("--format", choices=list(FORMATS), help="the format (default: from DST's name)")
    p.set_defaults(func=run)
    return p
