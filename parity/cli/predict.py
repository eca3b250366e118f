"""`resnet-parity predict`: classify images in PyTorch, Keras, or both side by side.

    resnet-parity predict cat.jpg dog.png --weights resnet50.pth --arch resnet50 --framework both
    resnet-parity predict cat.jpg --weights resnet50.keras --topk 3

Weights: any file parity.load_checkpoint reads (PyTorch state_dicts in their usual nestings
and namings, safetensors, `.keras`); the architecture is inferred from the tensors, or checked
against `--arch`. `--arch` alone builds the network with its initial, untrained weights.
"""

from __future__ import annotations

from pathlib import Path

import resnet_spec as rs

from ..apps import preprocess
from ..core.frameworks import FRAMEWORKS
from .errors import UsageError
from .sources import add_reading_arguments


def run(args) -> int:
    from ..apps.predict import format_results, predict
    from ..files.loading import load_models

    if args.weights is None and args.arch is None:
        raise UsageError("pass --weights FILE (a .keras or state_dict file), --arch NAME, or both")
    if args.arch is not None:
        rs.get(args.arch)  # an unknown name fails here, with close matches
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        raise UsageError(f"no such image file: {', '.join(missing)}")
    if args.topk < 1:
        raise UsageError(f"--topk must be at least 1, got {args.topk}")
    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    source = args.arch if args.weights is None else args.weights
    models = load_models(source, frameworks, arch=args.arch, key=args.key, weights="initial",
                         prefix=args.prefix)  # CheckpointError: see main
    if args.weights is None:
        print(f"note: {args.arch} with its initial, untrained weights: the predictions mean nothing")
    images = []
    for path in args.images:
        try:
            images.append(preprocess.load_image(path))
        except OSError as err:  # Pillow's UnidentifiedImageError is an OSError
            raise UsageError(f"{path} is not an image Pillow can read: {err}") from None
    spec = next(iter(models.values())).spec
    pre = preprocess.for_spec(spec)
    if args.stats:
        pre = pre.with_statistics(args.stats)
    print(format_results(args.images, predict(models, images, pre, args.topk)))
    return 0


def add_parser(sub):
    p = sub.add_parser(
        "predict",
        help="classify images in PyTorch, Keras or both, with top-k probabilities",
        description="Classify images with a network in PyTorch, Keras, or both side by side. "
        "Preprocessing (one definition for both frameworks): resize the shorter side, centre crop, "
        "normalise as the variant expects (torchvision's ImageNet statistics, keras.applications' caffe or tf "
        "mode, CIFAR-10 statistics, or 0.5 / 0.5); CIFAR-10 networks see the whole image at their size, the "
        "others 224 cropped from 256 (or their native size).",
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (anything Pillow reads)")
    p.add_argument("--weights", type=Path, metavar="FILE",
                   help="a checkpoint (.pth/.pt/.th/.safetensors, any usual nesting and naming) or a .keras "
                   "file; the architecture is inferred from it")
    p.add_argument("--arch", metavar="NAME",
                   help="architecture (see `resnet-parity list`): checked against --weights, or alone for "
                   "untrained weights")
    add_reading_arguments(p)
    p.add_argument("--framework", choices=(*FRAMEWORKS, "both"), default="torch")
    p.add_argument("--topk", type=int, default=5, metavar="K", help="classes to list per image (default 5)")
    p.add_argument("--stats", choices=sorted(preprocess.NORMALIZATIONS),
                   help="the normalisation the weights were trained with (default: the variant's own, "
                   "see `resnet-parity list`; the pytorch_resnet_cifar10 checkpoints used imagenet)")
    p.set_defaults(func=run)
    return p
