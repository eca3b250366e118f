"""`resnet-parity predict`: classify images with a network in PyTorch, Keras, or both side by side.

    resnet-parity predict cat.jpg dog.png --weights resnet50.pth --arch resnet50 --framework both
    resnet-parity predict cat.jpg --weights resnet50.keras --topk 3

Weights: any file parity.load_checkpoint reads (PyTorch state_dicts in their usual nestings
and namings, safetensors, `.keras`); the architecture is inferred from the tensors, or checked
against `--arch`. `--arch` alone builds the network with its initial, untrained weights.
Both frameworks receive the same images through the same preprocessing definition
(parity.preprocess), and probabilities are the softmax over the class axis.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import resnet_spec as rs

from . import labels, preprocess

FRAMEWORKS = ("torch", "keras")


def softmax_torch(logits):
    """Class probabilities from logits (N, classes): softmax over the class axis (dim 1)."""
    from ._frameworks import torch

    return torch.softmax(logits, dim=1)


def softmax_keras(logits):
    """Class probabilities from logits (N, classes): softmax over the class axis (the last)."""
    from ._frameworks import keras

    return keras.ops.softmax(logits, axis=-1)


def load_models(weights: Path | None = None, arch: str | None = None, frameworks=FRAMEWORKS) -> dict:
    """framework -> model in inference mode, for each of `frameworks`, holding the same weights:
    those of the file `weights` (any format parity.load_checkpoint reads; its architecture is
    inferred, or checked against `arch`), or `arch`'s initial weights when no file is given."""
    if weights is None and arch is None:
        raise ValueError("give weights (a checkpoint or .keras file), an architecture, or both")
    import resnet_torch

    from . import porting
    from .convert import load_checkpoint

    if weights is None:
        torch_model = resnet_torch.create_model(arch)
    else:
        state_dict, arch = load_checkpoint(weights, arch)
        num_classes = int(state_dict["fc.weight"].shape[0]) if "fc.weight" in state_dict else None
        torch_model = resnet_torch.create_model(arch, num_classes)
        # Files without BatchNorm counters (Keras, some exporters) keep the fresh module's.
        counters = {k: v for k, v in torch_model.state_dict().items() if k.endswith("num_batches_tracked")}
        torch_model.load_state_dict({**counters, **state_dict}, strict=True)
    models = {"torch": torch_model.eval()}
    if "keras" in frameworks:
        models["keras"] = porting.torch_to_keras(torch_model)
    return {f: models[f] for f in frameworks}


def predict(models: dict, images, pre: preprocess.Preprocessing | None = None, k: int = 5) -> dict:
    """framework -> (probabilities (N, classes) as numpy, top-k Predictions per image) for RGB
    `images` (arrays (H, W, 3)); `pre` defaults to the network's own (preprocess.for_spec)."""
    results = {}
    for framework, model in models.items():
        spec = model.spec
        if not spec.include_top:
            raise ValueError(f"{spec.name} has no classifier (include_top=False): nothing to predict")
        p = pre or preprocess.for_spec(spec)
        if framework == "torch":
            from ._frameworks import torch

            with torch.no_grad():
                probs = softmax_torch(model(preprocess.to_torch(images, p))).numpy()
        else:
            from ._frameworks import keras

            probs = keras.ops.convert_to_numpy(softmax_keras(model(preprocess.to_keras(images, p), training=False)))
        results[framework] = (probs, labels.top_k(probs, labels.names_for(spec.num_classes, spec.family), k))
    return results


def format_results(paths, results: dict) -> str:
    """One block per image: rank, then label and probability for each framework, side by side."""
    frameworks = list(results)
    width = 34
    lines = []
    for i, path in enumerate(paths):
        lines.append(str(path))
        lines.append(("  #  " + "".join(f"{f:<{width}}" for f in frameworks)).rstrip())
        ranks = zip(*(results[f][1][i] for f in frameworks))
        for r, preds in enumerate(ranks, 1):
            cells = (f"{p.label[: width - 12]:<{width - 12}} {p.probability:>8.4f}   " for p in preds)
            lines.append((f"  {r:<3}" + "".join(cells)).rstrip())
    return "\n".join(lines)


def _cmd_predict(args) -> int:
    from .cli import UsageError

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
    models = load_models(args.weights, args.arch, frameworks)  # CheckpointError: reported by the CLI
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


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `predict` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "predict",
        help="classify images in PyTorch, Keras or both, with top-k probabilities",
        description="Classify images with a network in PyTorch, Keras, or both side by side. "
        "Preprocessing (one definition for both frameworks): resize the shorter side, centre crop, "
        "normalise; CIFAR networks at 32x32 with CIFAR-10 statistics, the others 224 from 256 "
        "(or their native size) with ImageNet statistics.",
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (anything Pillow reads)")
    p.add_argument("--weights", type=Path, metavar="FILE",
                   help="a checkpoint (.pth/.pt/.th/.safetensors, any usual nesting and naming) or a .keras "
                   "file; the architecture is inferred from it")
    p.add_argument("--arch", metavar="NAME",
                   help="architecture (see `resnet-parity list`): checked against --weights, or alone for "
                   "untrained weights")
    p.add_argument("--framework", choices=(*FRAMEWORKS, "both"), default="torch")
    p.add_argument("--topk", type=int, default=5, metavar="K", help="classes to list per image (default 5)")
    p.add_argument("--stats", choices=sorted(preprocess.STATISTICS),
                   help="normalisation statistics the weights were trained with (default: the "
                   "network's family; the pytorch_resnet_cifar10 checkpoints used imagenet)")
    p.set_defaults(func=_cmd_predict)
    return p


if __name__ == "__main__":
    from ._standalone import run

    raise SystemExit(run(add_parser))
