"""The input an export is traced with and which of its axes stay free.

By default batch, height and width are all dynamic; a fixed size (--size) pins height and
width, the batch stays free. PyTorch's exporters (torch.export, and torch.onnx's on top of it)
take the free axes as torch.export.Dim ranges, Keras' take a keras.InputSpec with None axes.

torch.export specialises any axis whose traced value is 1 and guards that a dynamic one stays
above 1, so a dynamic program covers the sizes whose last feature map has at least 2 pixels
a side: `smallest_side` (33 for the ImageNet networks at output stride 32, 17 at 16, 9 at 8;
5 for the CIFAR ones). ResNeSt's and ResNet-D's average-pool shortcuts in ceil mode leave a
guard on the size that holds for every size but that torch.export's solver cannot prove;
`prefer_deferred_runtime_asserts_over_guards` keeps it as a check inside the program instead
of refusing the export (see pt2).
"""

from __future__ import annotations

import numpy as np

import resnet_spec as rs

from ...core.frameworks import keras, torch  # torch before TensorFlow: see frameworks
from .formats import ExportError

TRACE_BATCH = 2  # neither 1 (torch.export would specialise it) nor a batch the checks use
LARGEST_SIDE = 1 << 14  # the dynamic range's upper end, far above any real input


def last_map_side(spec: rs.ResNetSpec, side: int) -> int:
    """The side of the last feature map of a side x side input (0 if it vanishes on the way)."""
    p = rs.plan(spec)
    size = (side, side)
    for step in p.stem:
        size = rs.output_size(step, size)
    for block in p.blocks:
        for step in block.branch:
            size = rs.output_size(step, size)
    return max(0, min(size))


def smallest_side(spec: rs.ResNetSpec, pixels: int = 2) -> int:
    """The smallest input side whose last feature map keeps `pixels` a side."""
    side = 1
    while last_map_side(spec, side) < pixels:
        side += 1
    return side


def check_size(spec: rs.ResNetSpec, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """`size` as (H, W), or an ExportError when the network cannot take it."""
    if size is None:
        return None
    h, w = (int(n) for n in size)
    least = smallest_side(spec, pixels=1)
    if min(h, w) < least:
        raise ExportError(f"--size {h} {w} is too small for {spec.name}: its last feature map would vanish; "
                         f"expected at least {least} a side")
    return h, w


def trace_input(spec: rs.ResNetSpec, size: tuple[int, int] | None, seed: int = 0) -> np.ndarray:
    """NCHW float32 images the exporters trace with: the fixed size, or the variant's own."""
    h, w = size or (spec.input_size, spec.input_size)
    return np.random.default_rng(seed).standard_normal((TRACE_BATCH, spec.in_channels, h, w)).astype(np.float32)


def torch_dynamic_shapes(spec: rs.ResNetSpec, size: tuple[int, int] | None) -> tuple[dict, ...]:
    """torch.export's dynamic_shapes for the one input: batch free, and height and width free
    from smallest_side up unless `size` fixes them."""
    axes = {0: torch.export.Dim("batch", min=1, max=LARGEST_SIDE)}
    if size is None:
        least = smallest_side(spec)
        axes[2] = torch.export.Dim("height", min=least, max=LARGEST_SIDE)
        axes[3] = torch.export.Dim("width", min=least, max=LARGEST_SIDE)
    return (axes,)


def keras_input_spec(spec: rs.ResNetSpec, size: tuple[int, int] | None):
    """The NHWC keras.InputSpec, named "input": None for every free axis."""
    h, w = size or (None, None)
    return keras.InputSpec(shape=(None, h, w, spec.in_channels), dtype="float32", name="input")


def free_axes(size: tuple[int, int] | None) -> tuple[str, ...]:
    return ("batch",) if size else ("batch", "height", "width")
