"""PyTorch implementations of every ResNet variant in `resnet_spec`.

    >>> import resnet_torch
    >>> model = resnet_torch.resnet50()                       # or create_model("resnet50")
    >>> backbone = resnet_torch.create_model("resnest50", features_only=True, output_stride=16)

State dict keys are torchvision's (and the official ResNeSt repository's), so their checkpoints
load with `load_state_dict(..., strict=True)`. This package never imports TensorFlow or Keras.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import resnet_spec


def _load_triton() -> None:
    """Import triton, which torch would load later on first use of some features (torch.compile).

    triton bundles LLVM, and so do TensorFlow (XLA) and jaxlib. Loaded after one of those, its
    LLVM static initialisers bind to the LLVM symbols already in the process and free a foreign
    pointer: a segmentation fault. With RTLD_DEEPBIND its libraries resolve their own symbols
    first, so any import order works; loaded now, later lazy loads find it in place."""
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    flags = sys.getdlopenflags()
    if any(name in sys.modules for name in ("tensorflow", "jaxlib")):
        sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import triton  # noqa: F401
    finally:
        sys.setdlopenflags(flags)


_load_triton()

from .blocks import Block
from .folding import fold_batchnorm
from .layers import GlobalPool, SplitAttentionConv, ZeroPadShortcut
from .model import ResNet


def create_model(name: str | resnet_spec.ResNetSpec, num_classes: int | None = None, **options) -> ResNet:
    """Build the variant `name` (see `resnet_spec.names()`), or any `ResNetSpec`.

    num_classes defaults to the variant's own (1000, or 10 for the CIFAR ResNets). Other options:
    include_top, pooling ("avg", "max", None), drop_rate, output_stride (32, 16, 8; CIFAR 4, 2, 1),
    zero_init_residual, features_only.
    """
    return ResNet(resnet_spec.resolve(name, num_classes, **options))


# One builder per registered variant: resnet_torch.resnet50(), resnet_torch.resnest101(), ...
globals().update(resnet_spec.builders(create_model, "torch.nn.Module"))

__all__ = [
    "Block", "GlobalPool", "ResNet", "SplitAttentionConv", "ZeroPadShortcut", "create_model", "fold_batchnorm",
    *resnet_spec.names(),
]
