"""`resnet-parity check`: port randomised networks to Keras and check the parity contract."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import resnet_spec as rs

from .errors import UsageError


def check_one(name: str, args):
    """The parity report of `name` with randomised weights, on random images."""
    import resnet_torch

    from ..core import comparison, porting, testing

    spec = rs.get(name)
    torch_model = testing.randomize_torch(resnet_torch.create_model(spec), seed=args.seed)
    keras_model = porting.torch_to_keras(torch_model)
    x = testing.random_images(spec, args.batch, args.size, args.seed)
    return comparison.compare(torch_model, keras_model, x, mode=args.mode, seed=args.seed, precision=args.precision,
                              reference=not args.no_reference, allow_tf32=args.allow_tf32)


def use_backend(backend: str | None) -> None:
    """Make `backend` the Keras backend of this process (None: Keras' configured one). Keras
    reads KERAS_BACKEND once, when it is first imported."""
    import os
    import sys

    from ..core.frameworks import keras_backend

    if backend is None:
        return
    if "keras" in sys.modules and keras_backend() != backend:
        raise UsageError(f"--backend {backend}: Keras is already running on {keras_backend()} in this process")
    os.environ["KERAS_BACKEND"] = backend


def run(args) -> int:
    use_backend(args.backend)
    names = rs.names() if args.all else args.names
    if not names:
        raise UsageError("name at least one architecture, or pass --all (see `resnet-parity list`)")
    for name in names:
        rs.get(name)  # every name is valid before anything is built
    if args.json and args.json.exists() and not args.force:
        raise UsageError(f"{args.json} already exists; pass --force to overwrite it")
    if args.batch < 2 and args.mode == "train":
        raise UsageError("--mode train needs --batch >= 2 (batch statistics of one image are degenerate)")
    if args.no_reference and args.precision in ("bfloat16", "float16"):
        raise UsageError(f"--precision {args.precision} is checked by its envelope around float64: drop --no-reference")
    from ..core.precision import TRAIN_MIXED, PrecisionUnavailable, probe

    if args.mode == "train" and args.precision in ("bfloat16", "float16"):
        raise UsageError(f"--mode train --precision {args.precision}: {TRAIN_MIXED}")

    try:
        probe(args.precision)  # before any network is built
    except PrecisionUnavailable as e:
        raise UsageError(f"--precision {args.precision} cannot be checked here, nothing was compared: {e}")
    reports, failed = [], []
    for name in names:
        report = check_one(name, args)
        print(report.table(every_block=args.verbose), end="\n\n", flush=True)
        reports.append(report.to_dict())
        if not report.ok:
            failed.append(name)
    if args.json:
        from ..files.atomic import write_atomic

        write_atomic(args.json, json.dumps(reports, indent=1).encode(), force=args.force)
    from ..core.frameworks import environment

    env = environment()
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    print(f"{len(names) - len(failed)} of {len(names)} variants within the parity contract on Keras' "
          f"{env['backend']} backend ({versions})"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def add_parser(sub):
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
    p.add_argument("--precision", choices=("float32", "float64", "bfloat16", "float16"),
                   help="what both frameworks compute in (default float32); bfloat16 "
                   "and float16 are mixed precision: PyTorch autocast against a Keras model built under "
                   "mixed_bfloat16 / mixed_float16")
    p.add_argument("--train-dtype", dest="precision", choices=("float64", "float32"), help=argparse.SUPPRESS)
    p.add_argument("--no-reference", action="store_true",
                   help="skip the PyTorch float64 reference run (faster) and hold every tap to the fixed bounds "
                   "instead of the envelope (float32 only)")
    p.add_argument("--allow-tf32", action="store_true",
                   help="let NVIDIA GPUs compute float32 matmuls and convolutions in TF32 (default: off in "
                   "both frameworks; the report records the setting)")
    p.add_argument("--backend", choices=rs.KERAS_BACKENDS,
                   help="the Keras backend to check (default: Keras' configured one, KERAS_BACKEND)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the reports as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.add_argument("--verbose", action="store_true",
                   help="list every block, not only failures, and show the frameworks' own log lines")
    p.set_defaults(func=run)
    return p
