"""Class names shipped with the package, and top-k decoding of probabilities (numpy only).

`data/imagenet1k_classes.txt` was generated once from torchvision's weights metadata
(`ResNet50_Weights.IMAGENET1K_V1.meta["categories"]`, offline); `data/cifar10_classes.txt`
holds the ten CIFAR-10 classes in their label order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

DATASETS = {"imagenet1k": "imagenet1k_classes.txt", "cifar10": "cifar10_classes.txt"}


@lru_cache(maxsize=None)
def class_names(dataset: str) -> tuple[str, ...]:
    """The class names of "imagenet1k" (1000) or "cifar10" (10), index = label."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset: got {dataset!r}, expected one of {sorted(DATASETS)}")
    text = resources.files(__package__).joinpath("data", DATASETS[dataset]).read_text(encoding="utf-8")
    return tuple(text.splitlines())


def names_for(num_classes: int, dataset: str = "") -> tuple[str, ...]:
    """Names for a classifier's outputs: ImageNet-1k for 1000 classes, CIFAR-10 for 10 classes of
    a network trained on it (`dataset`, see preprocess.dataset_of), otherwise "class 0", ..."""
    if num_classes == 1000:
        return class_names("imagenet1k")
    if num_classes == 10 and dataset == "cifar10":
        return class_names("cifar10")
    return tuple(f"class {i}" for i in range(num_classes))


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


def top_k(probabilities: np.ndarray, names, k: int = 5) -> list[list[Prediction]]:
    """The k most probable classes of each row of `probabilities` (N, classes), most probable
    first (ties by lower index)."""
    p = np.asarray(probabilities)
    if p.ndim != 2 or p.shape[1] != len(names):
        raise ValueError(f"expected probabilities shaped (N, {len(names)}), got {p.shape}")
    k = min(k, p.shape[1])
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return [[Prediction(int(i), names[i], float(row[i])) for i in idx] for row, idx in zip(p, order)]
