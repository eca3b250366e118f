"""One definition of each error measure, used by every report, check and test.

Arrays are numpy arrays or anything numpy converts (CPU torch tensors included); differences
are computed in float64, so the measure itself adds no rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Difference:
    max_abs: float
    max_rel: float  # max_abs over the reference's scale (see difference)
    mean_abs: float


def as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly requiring grad
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def difference(reference, other, scale: float | None = None) -> Difference:
    """|other - reference|: its largest value, that value relative to `scale` (by default
    max(1, max|reference|), so that values near zero are held to an absolute bound), and its
    mean. Different shapes are an infinite difference."""
    a, b = as_array(reference), as_array(other)
    if a.shape != b.shape:
        return Difference(float("inf"), float("inf"), float("inf"))
    if a.size == 0:
        return Difference(0.0, 0.0, 0.0)
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if scale is None:
        scale = max(1.0, float(np.abs(a).max()))
    return Difference(float(d.max()), float(d.max()) / scale, float(d.mean()))


def relative_error(reference, other) -> float:
    """max|other - reference| / max(1, max|reference|): the parity contract's measure."""
    return difference(reference, other).max_rel


def gradient_difference(reference, other, floor: float) -> Difference:
    """A gradient's error relative to the gradient's own largest magnitude (gradients are small,
    so max(1, .) would hide everything); `floor` keeps analytically zero gradients (a bias
    followed by a BatchNorm in training mode) from dividing rounding noise by rounding noise."""
    return difference(reference, other, scale=max(float(np.abs(as_array(reference)).max()), floor))


def topk_agreement(reference, other, k: int) -> tuple[float, float]:
    """The fraction of rows (N, classes) with the same top-1 class, and with the same set of top-k
    classes."""
    ref, oth = as_array(reference), as_array(other)
    top1 = float(np.mean(ref.argmax(1) == oth.argmax(1)))
    a = np.sort(np.argsort(-ref, axis=1)[:, :k], axis=1)
    b = np.sort(np.argsort(-oth, axis=1)[:, :k], axis=1)
    return top1, float(np.mean(np.all(a == b, axis=1)))


def worst_relative_error(reference: dict, other: dict, skip=()) -> tuple[float, str]:
    """The largest relative_error over the tensors of two state_dicts (keys in `skip` aside),
    and its key. NaN counts as the worst."""
    worst, where = 0.0, ""
    for key, a in reference.items():
        if key in skip:
            continue
        d = relative_error(a, other[key])
        if not d <= worst:
            worst, where = d, key
    return worst, where
