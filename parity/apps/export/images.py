"""The inputs an exported file is checked on.

- Random images (standard normal, seeded) at sizes the export was not traced with: a batch of 1
  and a batch of 3, odd and non-square (height and width swapped between the two) when the
  size is free, at the fixed size otherwise.
- Real images, for quantized files: scikit-learn's two sample photographs, each whole and as
  four corner windows (2/3 of each side), through the prediction pipeline's preprocessing
  (parity.apps.preprocess: resize, centre crop to the network's size, normalise), and the first
  of scikit-learn's handwritten digits, upsampled from 8x8 with the same antialiased bilinear
  filter as train-parity's, grey in every channel, normalised alike.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import resnet_spec as rs
from resnet_spec.preprocessing import CROP_FRACTION

from ...core import testing
from .. import preprocess

CHECK_BATCHES = (1, 3)  # neither is signatures.TRACE_BATCH: the batch axis must be free
DIGITS = 22  # with the 10 photograph views, 32 real images
VIEW_FRACTION = 2 / 3  # of each side, for the corner windows


def check_cases(spec: rs.ResNetSpec, size: tuple[int, int] | None) -> list[tuple[int, int, int]]:
    """(batch, height, width) of each random check input."""
    h, w = size or testing.odd_size(spec)
    second = (h, w) if size else (w, h)
    return [(CHECK_BATCHES[0], h, w), (CHECK_BATCHES[1], *second)]


def random_inputs(spec: rs.ResNetSpec, size: tuple[int, int] | None, seed: int = 0):
    """[(name, NCHW float32 images)] for check_cases."""
    return [(f"batch {n}, {h}x{w}", testing.random_images(spec, n, (h, w), seed=seed + i))
            for i, (n, h, w) in enumerate(check_cases(spec, size))]


def photo_views(image: np.ndarray) -> list[np.ndarray]:
    """The whole image and its four corner windows."""
    h, w = image.shape[:2]
    vh, vw = int(h * VIEW_FRACTION), int(w * VIEW_FRACTION)
    return [image] + [image[top:top + vh, left:left + vw] for top in (0, h - vh) for left in (0, w - vw)]


def real_images(spec: rs.ResNetSpec, size: tuple[int, int] | None = None) -> np.ndarray:
    """NCHW float32: the photographs' views, then the digits, at `size` (default: the network's
    own)."""
    from sklearn.datasets import load_digits, load_sample_images

    h, w = size or (spec.input_size, spec.input_size)
    pre = preprocess.for_spec(spec)
    side = max(h, w)  # a square crop, cut to h x w (the pipeline crops squares)
    pre = dataclasses.replace(pre, crop=side, resize=max(side, round(side / CROP_FRACTION)))
    views = [view for photo in load_sample_images().images for view in photo_views(photo)]
    photos = preprocess.to_torch(views, pre).numpy()
    top, left = (side - h) // 2, (side - w) // 2
    photos = photos[:, :, top:top + h, left:left + w]

    digits = load_digits().images[:DIGITS] / 16.0
    grey = np.einsum("ih,nhw,jw->nij", preprocess.resize_matrix(8, h), digits, preprocess.resize_matrix(8, w))
    mean, std = (np.asarray(v).reshape(1, 3, 1, 1) for v in (pre.mean, pre.std))
    digits = (grey[:, None] - mean) / std
    return np.concatenate([photos, digits.astype(np.float32)]).astype(np.float32)
