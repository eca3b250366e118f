"""PyTorch implementations of every ResNet variant in `resnet_spec`.

    >>> import resnet_torch
    >>> model = resnet_torch.resnet50()                       # or create_model("resnet50")
    >>> backbone = resnet_torch.create_model("resnest50", features_only=True, output_stride=16)

State dict keys are torchvision's (and the official ResNeSt repository's), so their checkpoints
load with `load_state_dict(..., strict=True)`. This package never imports TensorFlow or Keras.
"""

from __future__ import annotations

import importlib.util

import resnet_spec

# torch loads triton lazily, on first use of some features; if TensorFlow is in the process by
# then, that load crashes it (segmentation fault). Loaded now, it coexists with TensorFlow.
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401

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
