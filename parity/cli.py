"""The `resnet-parity` command line.

Subcommands import their framework lazily, so `resnet-parity list` needs neither torch nor
TensorFlow, and an expected error prints one paragraph and exits non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import resnet_spec as rs


# TensorFlow's C++ start-up notes (CPU features, oneDNN) are noise on a command line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # and its Python-side retracing notes


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


def _check_one(name: str, args):
    import numpy as np

    from . import comparison, porting, testing
    from .convert import verification_size

    spec = rs.get(name)
    h, w = args.size or verification_size(spec)  # odd and non-square by default
    import resnet_torch

    torch_model = testing.randomize_torch(resnet_torch.create_model(spec), seed=args.seed)
    keras_model = porting.torch_to_keras(torch_model)
    x = np.random.default_rng(args.seed).standard_normal((args.batch, spec.in_channels, h, w)).astype("float32")
    return comparison.compare(torch_model, keras_model, x, mode=args.mode, seed=args.seed, train_dtype=args.train_dtype)


def _cmd_check(args) -> int:
    names = rs.names() if args.all else args.names
    if not names:
        raise UsageError("name at least one architecture, or pass --all (see `resnet-parity list`)")
    for name in names:
        rs.get(name)  # every name is valid before anything is built
    if args.json and args.json.exists() and not args.force:
        raise UsageError(f"{args.json} already exists; pass --force to overwrite it")
    if args.batch < 2 and args.mode == "train":
        raise UsageError("--mode train needs --batch >= 2 (batch statistics of one image are degenerate)")
    reports, failed = [], []
    for name in names:
        report = _check_one(name, args)
        print(report.table(every_block=args.verbose), end="\n\n", flush=True)
        reports.append(report.to_dict())
        if not report.ok:
            failed.append(name)
    if args.json:
        from .files import write_atomic

        write_atomic(args.json, json.dumps(reports, indent=1).encode(), force=args.force)
    print(f"{len(names) - len(failed)} of {len(names)} variants within the parity contract"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _cmd_demo(args) -> int:
    import numpy as np

    from . import comparison, porting, testing
    import resnet_torch

    print("resnet-parity demo: resnet50 with seeded random weights, PyTorch -> Keras -> PyTorch\n")
    torch_model = testing.randomize_torch(resnet_torch.resnet50(), seed=0)
    keras_model = porting.torch_to_keras(torch_model)
    back = porting.keras_to_torch(keras_model)
    source, returned = torch_model.state_dict(), back.state_dict()
    same = sum(bool((source[k] == returned[k]).all()) for k in source)
    print(f"round trip: {same} of {len(source)} tensors identical bit for bit\n")
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype("float32")
    report = comparison.compare(torch_model, keras_model, x)
    print(report.table())
    return 0 if report.ok and same == len(source) else 1


FORMATS = {"keras": ".keras", "weights.h5": ".weights.h5", "pth": ".pth", "pt": ".pt", "safetensors": ".safetensors"}


def _progress(done: int, total: int, label: str, width: int = 24) -> None:
    """A one-line progress bar on stderr, one line per step (readable in CI logs too)."""
    filled = width * done // total
    print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}", file=sys.stderr, flush=True)


def _convert_one(src: Path, dst: Path, args) -> int:
    from .checkpoints import check_readable
    from .files import check_destination

    check_readable(src)  # the cheap refusals first, before the frameworks load
    check_destination(dst, args.force)
    from .convert import VerificationError, convert_file

    try:
        result = convert_file(src, dst, arch=args.arch, num_classes=args.num_classes, force=args.force,
                              verify=not args.no_verify, key=args.key)
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


def _cmd_convert(args) -> int:
    from .convert import side
    from .files import full_suffix

    *sources, dst = args.paths
    if not sources:
        raise UsageError("give a source file and a destination (SRC... DST)")
    if len(sources) == 1 and not dst.is_dir():
        if args.format:
            raise UsageError("--format applies when DST is a directory; here DST's suffix decides")
        return _convert_one(sources[0], dst, args)
    if not dst.is_dir():
        raise UsageError(f"with several sources DST must be an existing directory; {dst} is not one")
    targets = []
    for src in sources:
        suffix = FORMATS[args.format] if args.format else (".keras" if side(src) == "torch" else ".pth")
        stem = src.name[: len(src.name) - len(full_suffix(src))]
        targets.append((src, dst / (stem + suffix)))
    worst = 0
    for i, (src, target) in enumerate(targets):
        _progress(i, len(targets), f"converting {src.name}")
        try:
            status = _convert_one(src, target, args)
        except expected_errors() as err:
            print(f"resnet-parity convert: error: {err}", file=sys.stderr)
            status = 2
        worst = max(worst, status)
    _progress(len(targets), len(targets), "done")
    return worst


def _cmd_export_onnx(args) -> int:
    from .convert import VerificationError
    from .onnx_export import export_onnx

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnet-parity",
        description="The ResNet family in PyTorch and Keras 3 from one spec, and proof that they agree.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="every variant with its family, parameters and MACs")
    p.add_argument("--family", choices=rs.FAMILIES, help="only this family")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "check",
        help="port randomised networks to Keras and check the parity contract",
        description="Build each network with randomised weights and statistics, port it to Keras, "
        "compare every stem, block, stage and output, print the table; exit 1 if any variant "
        "breaks the contract. Run it in CI against your framework versions.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="architectures (see `resnet-parity list`)")
    p.add_argument("--all", action="store_true", help="every registered variant")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input size (default 75x67, CIFAR 33x31)")
    p.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    p.add_argument("--mode", choices=("eval", "train"), default="eval")
    p.add_argument("--train-dtype", choices=("float64", "float32"), default="float64",
                   help="precision of the train-mode step (default float64: float32 batch statistics "
                   "are too coarse for the bounds in deep bottleneck networks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the reports as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.add_argument("--verbose", action="store_true", help="list every block, not only failures")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser(
        "convert",
        help="convert checkpoint files between PyTorch and Keras, verified",
        description="Convert PyTorch files (.pth .pt .th .bin .ckpt .safetensors; torchvision, "
        "official ResNeSt, timm and pytorch_resnet_cifar10 naming, nested or with a 'module.' "
        "prefix) to Keras (.keras, .weights.h5), or back. The architecture is read from the "
        "tensors unless --arch is given. The written file is read back and compared with the "
        "source on random inputs; the table is printed and the exit status is 1 if it breaks the "
        "parity contract (then nothing is written). Files are read without unpickling code.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="SRC... DST",
                   help="one source and a destination file, or sources and an existing directory")
    p.add_argument("--arch", metavar="NAME", help="the architecture (default: inferred from the tensors)")
    p.add_argument("--num-classes", type=int, metavar="N", help="classifier size (default: from fc.weight)")
    p.add_argument("--key", metavar="KEY", help="the checkpoint entry holding the weights (e.g. state_dict_ema)")
    p.add_argument("--format", choices=list(FORMATS), help="output format when DST is a directory "
                   "(default: keras for PyTorch sources, pth for Keras sources)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison of the written file with the source")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "export-onnx",
        help="export to ONNX from either framework, checked in ONNX Runtime against both",
        description="Export SRC (a checkpoint, a .keras file, or a variant name for seeded random "
        "weights) to ONNX with a dynamic batch axis, check it with onnx.checker, run it in ONNX "
        "Runtime and compare with both frameworks (1e-5 relative); exit 1 if they disagree.",
    )
    p.add_argument("source", metavar="SRC")
    p.add_argument("dst", type=Path, metavar="DST")
    p.add_argument("--framework", choices=("torch", "keras"), default="torch",
                   help="the exporter (torch: NCHW input; keras: NHWC input)")
    p.add_argument("--arch", metavar="NAME", help="the architecture (default: inferred)")
    p.add_argument("--num-classes", type=int, metavar="N")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input size (default: the variant's own)")
    p.add_argument("--force", action="store_true", help="overwrite an existing DST")
    p.set_defaults(func=_cmd_export_onnx)

    from . import predict, train_parity  # light modules: their frameworks load when they run

    predict.add_parser(sub)
    train_parity.add_parser(sub)

    p = sub.add_parser("demo", help="the built-in demonstration run by `make demo`")
    p.set_defaults(func=_cmd_demo)
    return parser


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's input, not our bug: one paragraph, exit 2, no traceback.
    Light modules only; porting's error is included once porting has been loaded."""
    from .checkpoints import CheckpointError
    from .files import OutputExistsError, OutputPathError

    errors = (UsageError, rs.SpecError, rs.UnknownArchitecture, CheckpointError, OutputExistsError, OutputPathError)
    porting = sys.modules.get("parity.porting")
    return errors + ((porting.WeightMismatchError,) if porting else ())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except expected_errors() as err:
        print(f"resnet-parity {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
