"""Classify images with a network in PyTorch, Keras, or both side by side (`resnet-parity predict`).

    >>> models = parity.files.loading.load_models(Path("resnet20-12fca82f.th"))   # both frameworks
    >>> results = predict(models, [preprocess.load_image("photo.jpg")], k=5)
    >>> probs, top5 = results["keras"]

Both frameworks receive the same images through the same preprocessing definition
(preprocess), and probabilities are the softmax over the class axis.
"""

from __future__ import annotations

from . import labels, preprocess


def softmax_torch(logits):
    """Class probabilities from logits (N, classes): softmax over the class axis (dim 1)."""
    from ..core.frameworks import torch

    return torch.softmax(logits, dim=1)


def softmax_keras(logits):
    """Class probabilities from logits (N, classes): softmax over the class axis (the last)."""
    from ..core.frameworks import keras

    return keras.ops.softmax(logits, axis=-1)


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
            from ..core.frameworks import torch

            with torch.no_grad():
                probs = softmax_torch(model(preprocess.to_torch(images, p))).numpy()
        else:
            from ..core.frameworks import keras

            probs = keras.ops.convert_to_numpy(softmax_keras(model(preprocess.to_keras(images, p), training=False)))
        results[framework] = (probs, labels.top_k(probs, labels.names_for(spec.num_classes, preprocess.dataset_of(spec)), k))
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


