"""Keras 3 implementations of every ResNet variant in `resnet_spec` (channels-last input).

    >>> import resnet_tf
    >>> model = resnet_tf.resnet50()                          # or create_model("resnet50")
    >>> backbone = resnet_tf.create_model("resnest50", features_only=True, output_stride=16)

Layers carry the same names as resnet_torch's modules ("conv1", "layer1.0.bn1", "fc", ...), so
weights map between the two by name (see parity.core.porting). Public Keras 3 API only; this package
never imports torch.
"""

from __future__ import annotations

import resnet_spec

from .folding import FoldedBatchNorm, fold_batchnorm
from .layers import BatchNorm, GlobalPool, Pool2D, RadixGap, SplitAttention, ZeroPadShortcut, keras_name
from .model import ResNet

_SPEC = object()  # "the spec's own value" for options whose None is meaningful


def create_model(
    name_or_spec: str | resnet_spec.ResNetSpec,
    num_classes: int | None = None,
    input_shape: tuple | None = None,
    include_top: bool | None = None,
    pooling=_SPEC,
    **options,
) -> ResNet:
    """Build the variant `name_or_spec` (see `resnet_spec.names()`), or any `ResNetSpec`.

    num_classes defaults to the variant's own (1000, or 10 for the CIFAR ResNets); include_top
    (default True) and pooling ("avg" by default, "max" or None) to the spec's values.
    input_shape is (H, W, C), by default (None, None, C): any spatial size. Other options as
    in resnet_torch.create_model: drop_rate, output_stride (32, 16, 8; CIFAR 4, 2, 1),
    zero_init_residual, features_only (a model with one output per stage).
    """
    if include_top is not None:
        options["include_top"] = include_top
    if pooling is not _SPEC:
        options["pooling"] = pooling
    return ResNet(resnet_spec.resolve(name_or_spec, num_classes, **options), input_shape=input_shape)


# One builder per registered variant: resnet_tf.resnet50(), resnet_tf.resnest101(), ...
globals().update(resnet_spec.builders(create_model, "keras.Model"))

__all__ = [
    "BatchNorm", "FoldedBatchNorm", "GlobalPool", "Pool2D", "RadixGap", "ResNet", "SplitAttention", "ZeroPadShortcut", "create_model", "fold_batchnorm", "keras_name",
    *resnet_spec.names(),
]
