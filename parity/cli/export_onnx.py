"""`resnet-parity export-onnx`: `export ... --format onnx`, under the command's older name."""

from __future__ import annotations

from .export import add_common_arguments, run


def add_parser(sub):
    p = sub.add_parser(
        "export-onnx",
        help="export to ONNX from either framework (the same as export --format onnx)",
        description="Export SRC (a checkpoint, a .keras file, or a variant name for seeded random "
        "weights) to ONNX with a dynamic batch, height and width (--size fixes height and width), check "
        "it with onnx.checker, run it in ONNX Runtime and compare with both frameworks (1e-5 relative); "
        "exit 1 if they disagree. The same as `resnet-parity export SRC DST --format onnx`.",
    )
    add_common_arguments(p, quantize=False)
    p.set_defaults(func=run, format="onnx", quantize="none")
    return p
