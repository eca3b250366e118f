"""One preprocessing definition for both frameworks: decode, resize, centre crop, normalise.

The definition (`Preprocessing`) holds numbers only; `to_torch` and `to_keras` carry it out
with each framework's own operations, and a test holds the two to the same tensor:

1. decode with Pillow to RGB, scale to [0, 1] in float32;
2. resize so that the shorter side is `resize` (the longer one scaled by the same factor and
   truncated, as torchvision's Resize), bilinear with antialiasing as Pillow and torchvision
   define it (a triangle filter widened by the downscaling factor, weights renormalised at
   the borders). The filter weights are computed once here, in float64 (`resize_matrix`), and
   both frameworks apply them as two matrix products. Their native resizes do not agree
   closely enough: TensorFlow's antialiased bilinear differs from PyTorch's by 2e-5 (of the
   [0, 1] range) even in float64, and PyTorch's float32 kernel from its own float64 by 1e-5;
3. centre crop `crop` x `crop` (offsets rounded as torchvision's CenterCrop);
4. subtract `mean`, divide by `std`, per channel (on [0, 1] RGB pixels), then with `bgr` reverse
   the channels; NCHW for PyTorch, NHWC for Keras.

Each variant names its own normalisation (`ResNetSpec.preprocessing`), whose numbers
resnet_spec.NORMALIZATIONS holds: torchvision's ImageNet mean and std, keras.applications' "caffe"
(BGR, ImageNet mean subtracted on the 0-255 scale) and "tf" ([-1, 1]) modes, the CIFAR-10
statistics, and the CIFAR-10 notebook's 0.5 / 0.5.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

import resnet_spec as rs
# The numbers live with the spec, which names each variant's own.
from resnet_spec.preprocessing import NORMALIZATIONS


@dataclass(frozen=True)
class Preprocessing:
    resize: int  # the shorter side after resizing
    crop: int  # side of the square centre crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool = False  # reverse the channels after normalising (keras.applications' caffe mode)

    def __post_init__(self):
        if not 1 <= self.crop <= self.resize:
            raise ValueError(f"crop: got {self.crop}, expected 1 <= crop <= resize ({self.resize})")

    def with_statistics(self, name: str) -> "Preprocessing":
        """The same geometry with the named normalisation (NORMALIZATIONS: "imagenet", "caffe", ...)."""
        if name not in NORMALIZATIONS:
            raise ValueError(f"statistics: got {name!r}, expected one of {sorted(NORMALIZATIONS)}")
        n = NORMALIZATIONS[name]
        return dataclasses.replace(self, mean=n.mean, std=n.std, bgr=n.bgr)


    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        if height <= width:
            return self.resize, int(self.resize * width / height)
        return int(self.resize * height / width), self.resize

    def crop_offsets(self, height: int, width: int) -> tuple[int, int]:
        return int(round((height - self.crop) / 2.0)), int(round((width - self.crop) / 2.0))


def for_spec(spec: rs.ResNetSpec) -> Preprocessing:
    """The evaluation preprocessing of a variant (spec.preprocessing) at its native size: the
    ImageNet protocol (224 cropped from 256, ...) or, for CIFAR-10 networks, the whole image."""
    n = NORMALIZATIONS[spec.preprocessing]
    return Preprocessing(int(spec.input_size / n.crop_fraction), spec.input_size, n.mean, n.std, n.bgr)


def dataset_of(spec: rs.ResNetSpec) -> str:
    """The data set whose classes the variant's own classifier predicts ("imagenet1k", "cifar10")."""
    return NORMALIZATIONS[spec.preprocessing].dataset


def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) weights of the antialiased bilinear resize along one axis, with
    Pillow's (and torchvision's antialias=True) filter: output pixel i is centred at
    (i + 0.5) * scale in the input, and its triangle filter spans max(scale, 1) pixels each
    side, clipped to the image and renormalised."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), in_size)
        j = np.arange(lo, hi)
        w = np.maximum(0.0, 1.0 - np.abs((j - centre + 0.5) / support))
        weights[i, lo:hi] = w / w.sum()
    return weights


def _plan(pre: Preprocessing, height: int, width: int):
    """The resize matrices (rows, columns), already cut to the centre crop, as float32."""
    h, w = pre.resized_size(height, width)
    top, left = pre.crop_offsets(h, w)
    rows = resize_matrix(height, h)[top : top + pre.crop]
    cols = resize_matrix(width, w)[left : left + pre.crop]
    return rows.astype(np.float32), cols.astype(np.float32)


def load_image(path) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3), through Pillow."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _as_float(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image shaped (H, W, 3), got shape {image.shape}")
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def to_torch(images, pre: Preprocessing):
    """A list of RGB images (uint8, or float in [0, 1], each (H, W, 3)) as one NCHW torch batch."""
    from ..core.frameworks import torch

    out = []
    mean, std = torch.tensor(pre.mean).view(3, 1, 1), torch.tensor(pre.std).view(3, 1, 1)
    for image in images:
        x = torch.from_numpy(_as_float(image))
        rows, cols = (torch.from_numpy(m) for m in _plan(pre, *x.shape[:2]))
        x = torch.einsum("ih,hwc,jw->cij", rows, x, cols)  # resize and crop, to CHW
        x = (x - mean) / std
        out.append(x.flip(0) if pre.bgr else x)
    return torch.stack(out)


def to_keras(images, pre: Preprocessing):
    """The same as to_torch with keras.ops: one NHWC batch (a backend tensor)."""
    from ..core.frameworks import keras

    ops = keras.ops
    out = []
    mean, std = np.array(pre.mean, "float32"), np.array(pre.std, "float32")
    for image in images:
        x = _as_float(image)
        rows, cols = _plan(pre, *x.shape[:2])
        x = ops.einsum("ih,hwc,jw->ijc", rows, x, cols)  # resize and crop, HWC
        x = (x - mean) / std
        out.append(ops.flip(x, axis=-1) if pre.bgr else x)
    return ops.stack(out)
