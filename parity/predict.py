"""`resnet-parity predict`: classify images with a network in PyTorch, Keras, or both side by side.

    resnet-parity predict cat.jpg dog.png --weights resnet50.pth --arch resnet50 --framework both
    resnet-parity predict cat.jpg --weights resnet50.keras --topk 3

Weights: a `.keras` file (it names its architecture), or a PyTorch state_dict file (`.pth`,
`.pt`, `.th`, `.safetensors`; raw or nested under "state_dict"/"model", `module.` prefixes
stripped) with `--arch`. `--arch` alone builds the network with its initial, untrained weights.
Both frameworks receive the same images through the same preprocessing definition
(parity.preprocess), and probabilities are the softmax over the class axis.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import resnet_spec as rs

from . import labels, preprocess

FRAMEWORKS = ("torch", "keras")
STATE_DICT_SUFFIXES = (".pth", ".pt", ".th", ".bin", ".safetensors")


def softmax_torch(logits):
    """Class probabilities from logits (N, classes): softmax over the class axis (dim 1)."""
    from ._frameworks import torch

    return torch.softmax(logits, dim=1)


def softmax_keras(logits):
    """Class probabilities from logits (N, classes): softmax over the class axis (the last)."""
    from ._frameworks import keras

    return keras.ops.softmax(logits, axis=-1)


def read_state_dict(path: Path) -> dict:
    """A PyTorch state_dict from a file, never unpickling arbitrary objects. Uses
    parity.load_checkpoint where it exists; otherwise unwraps "state_dict"/"model" nesting
    and a `module.` prefix."""
    try:
        from .checkpoints import load_checkpoint  # the general loader, where present
    except ImportError:
        load_checkpoint = None
    if load_checkpoint is not None:
        loaded = load_checkpoint(path)
        return getattr(loaded, "state_dict", loaded)
    from ._frameworks import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        data = load_file(str(path))
    else:
        data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    return {k.removeprefix("module."): v for k, v in data.items()}


def load_models(weights: Path | None = None, arch: str | None = None, frameworks=FRAMEWORKS) -> dict:
    """framework -> model in inference mode, for each of `frameworks`, holding the same weights."""
    if weights is None and arch is None:
        raise ValueError("give weights (a .keras or state_dict file), an architecture, or both")
    from . import porting

    if weights is not None and not weights.is_file():
        raise FileNotFoundError(f"{weights} does not exist or is not a file")
    models = {}
    if weights is not None and weights.suffix == ".keras":
        from ._frameworks import keras

        keras_model = keras.saving.load_model(weights)
        spec = getattr(keras_model, "spec", None)
        if not isinstance(spec, rs.ResNetSpec):
            raise ValueError(f"{weights} does not hold a resnet_tf model (no ResNetSpec in its config)")
        if arch is not None and arch != spec.name:
            raise ValueError(f"{weights} holds a {spec.name}, not a {arch}")
        models["keras"] = keras_model
        if "torch" in frameworks:
            models["torch"] = porting.keras_to_torch(keras_model).eval()
        return {f: models[f] for f in frameworks}

    if weights is not None and weights.suffix not in STATE_DICT_SUFFIXES:
        raise ValueError(f"{weights}: expected a .keras file or a state_dict ({', '.join(STATE_DICT_SUFFIXES)})")
    if arch is None:
        raise ValueError(f"{weights} is a state_dict, which does not name its architecture: pass --arch NAME")
    import resnet_torch

    state_dict = read_state_dict(weights) if weights is not None else None
    options = {}
    if state_dict is not None and "fc.weight" in state_dict:
        options["num_classes"] = int(state_dict["fc.weight"].shape[0])
    torch_model = resnet_torch.create_model(arch, **options)
    if state_dict is not None:
        torch_model.load_state_dict(state_dict, strict=True)
    models["torch"] = torch_model.eval()
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
    try:
        models = load_models(args.weights, args.arch, frameworks)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
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
                   help="a .keras file, or a PyTorch state_dict (.pth/.pt/.th/.safetensors) with --arch")
    p.add_argument("--arch", metavar="NAME", help="architecture (see `resnet-parity list`)")
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
