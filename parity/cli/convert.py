"""`resnet-parity convert`: checkpoint files between PyTorch and Keras, verified, one or many."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import UsageError, expected_errors
from .sources import add_reading_arguments

FORMATS = {"keras": ".keras", "weights.h5": ".weights.h5", "pth": ".pth", "pt": ".pt", "safetensors": ".safetensors"}


def progress(done: int, total: int, label: str, width: int = 24) -> None:
    """A one-line progress bar on stderr, one line per step (readable in CI logs too)."""
    filled = width * done // total
    print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}", file=sys.stderr, flush=True)


def convert_one(src: Path, dst: Path, args) -> int:
    from ..files.atomic import check_destination
    from ..files.checkpoints import check_readable

    check_readable(src)  # the cheap refusals first, before the frameworks load
    check_destination(dst, args.force)
    from ..core.report import VerificationError
    from ..files.convert import convert_file

    try:
        result = convert_file(src, dst, arch=args.arch, num_classes=args.num_classes, force=args.force,
                              verify=not args.no_verify, key=args.key, prefix=args.prefix,
                              layout=args.layout.replace("-", "_"), reference=not args.no_reference)
    except VerificationError as err:
        print(err.report.table(), end="\n\n")
        print(f"resnet-parity convert: {err}", file=sys.stderr)
        return 1
    spec = result.spec
    how = "inferred from the tensors" if result.inferred else "as given by --arch"
    classes = f"num_classes={spec.num_classes}" if spec.include_top else "no classifier"
    print(f"{src}: {spec.name} ({classes}), {how}" + "".join(f"; {n}" for n in result.notes))
    if result.report is not None:
        print(result.report.table())
    print(f"wrote {dst}" + ("" if result.report is not None else " (not verified: --no-verify)"), end="\n\n")
    return 0


def run(args) -> int:
    from ..files.atomic import full_suffix
    from ..files.loading import side

    *sources, dst = args.paths
    if not sources:
        raise UsageError("give a source file and a destination (SRC... DST)")
    if len(sources) == 1 and not dst.is_dir():
        if args.format:
            raise UsageError("--format applies when DST is a directory; here DST's suffix decides")
        return convert_one(sources[0], dst, args)
    if not dst.is_dir():
        raise UsageError(f"with several sources DST must be an existing directory; {dst} is not one")
    targets = []
    for src in sources:
        suffix = FORMATS[args.format] if args.format else (".keras" if side(src) == "torch" else ".pth")
        stem = src.name[: len(src.name) - len(full_suffix(src))]
        targets.append((src, dst / (stem + suffix)))
    worst = 0
    for i, (src, target) in enumerate(targets):
        progress(i, len(targets), f"converting {src.name}")
        try:
            status = convert_one(src, target, args)
        except expected_errors() as err:
            print(f"resnet-parity convert: error: {err}", file=sys.stderr)
            status = 2
        worst = max(worst, status)
    progress(len(targets), len(targets), "done")
    return worst


def add_parser(sub):
    p = sub.add_parser(
        "convert",
        help="convert checkpoint files between PyTorch and Keras, verified",
        description="Convert PyTorch files (.pth .pt .th .bin .ckpt .safetensors; torchvision, "
        "official ResNeSt, timm and pytorch_resnet_cifar10 naming; the state_dict nested under any "
        "key, as PyTorch's tutorial checkpoint and Lightning keep it; keys under a prefix such as "
        "'module.' or 'model.'; fine-tuned heads: fc as nn.Linear or an nn.Sequential of Linear, "
        "ReLU and Dropout) to Keras (.keras, .weights.h5), or back; and keras.applications' ResNet "
        "files (.keras, .weights.h5, legacy .h5) to PyTorch or to our .keras. The architecture is read from the "
        "tensors unless --arch is given. The written file is read back and compared with the "
        "source on random inputs; the table is printed and the exit status is 1 if it breaks the "
        "parity contract (then nothing is written). Files are read without unpickling code.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="SRC... DST",
                   help="one source and a destination file, or sources and an existing directory")
    p.add_argument("--arch", metavar="NAME", help="the architecture (default: inferred from the tensors)")
    p.add_argument("--num-classes", type=int, metavar="N", help="classifier size (default: from fc.weight)")
    add_reading_arguments(p)
    p.add_argument("--format", choices=list(FORMATS), help="output format when DST is a directory "
                   "(default: keras for PyTorch sources, pth for Keras sources)")
    p.add_argument("--layout", choices=("resnet-tf", "keras-applications"), default="resnet-tf",
                   help="of a written .weights.h5 file: resnet_tf's model (default), or keras.applications' "
                   "own (keras_resnet* networks; load it with model.load_weights into e.g. "
                   "keras.applications.ResNet50(weights=None))")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison of the written file with the source")
    p.add_argument("--no-reference", action="store_true",
                   help="verify against the fixed bounds only, without the PyTorch float64 reference run")
    p.set_defaults(func=run)
    return p
