"""`resnet-parity train-parity`: train a network in both frameworks on the same digit batches."""

from __future__ import annotations

from pathlib import Path

import resnet_spec as rs

from ..apps.train_parity import DTYPES, LOSS_TOLERANCE, PARITY_STEPS
from .errors import UsageError


def run(args) -> int:
    from ..apps.train_parity import digits, train_parity
    from ..files.atomic import check_destination, write_atomic

    rs.get(args.name)  # unknown names fail before anything is built
    if args.plot is not None:
        check_destination(args.plot, args.force)  # fail before training, not after
    steps = args.steps
    if args.epochs is not None:
        steps = args.epochs * (len(digits(args.seed).y_train) // args.batch)
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    if args.batch < 2:
        raise UsageError("--batch must be at least 2 (BatchNorm needs batch statistics)")
    result = train_parity(args.name, steps, args.batch, args.lr, args.momentum, args.weight_decay,
                          args.seed, args.init, args.dtype)
    print(result.table())
    if args.plot is not None:
        write_atomic(args.plot, result.plot_png(), force=args.force)
        print(f"plot written to {args.plot}")
    return 0 if result.ok else 1


def add_parser(sub):
    p = sub.add_parser(
        "train-parity",
        help="train a network in both frameworks on the same digit batches and compare the losses",
        description="Train NAME (10 classes) in PyTorch and Keras from the same initial weights on "
        "the same batches of scikit-learn's digits (upsampled to 32x32), SGD with momentum and "
        "weight decay with PyTorch's semantics in both; print both losses per step and the held-out "
        f"accuracy. Exit 1 if the losses differ by more than {LOSS_TOLERANCE:.0e} (relative) within "
        f"the first {PARITY_STEPS} steps.",
    )
    p.add_argument("name", metavar="NAME", help="architecture (see `resnet-parity list`), e.g. resnet20")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=30, help="SGD steps (default 30)")
    length.add_argument("--epochs", type=int, help="train this many epochs instead of --steps")
    p.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG of both loss curves")
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay (default 5e-4)")
    p.add_argument("--init", choices=("random", "default"), default="random",
                   help="initial weights: parity.testing.randomize_torch (default; residual branches scaled "
                   "down), or PyTorch's initialisation (chaotic first steps: the frameworks drift apart)")
    p.add_argument("--dtype", choices=DTYPES, default="float64",
                   help="precision of weights and computation (default float64: in float32, PyTorch alone "
                   "drifts more than the bound from its own float64 run within 20 steps)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
    return p

