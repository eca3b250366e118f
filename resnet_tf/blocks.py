"""Residual blocks as functional-API graphs, one function per block kind of the spec.

Each function takes a plan `Block` and a symbolic tensor and returns the block's output. Every
weighted layer comes from the plan under the plan's name; the parameter-free helpers get
names derived from it ("<layer>_pad", "<layer>_relu", "<block>.add", ...), so names stay unique
and readable in model.summary().
"""

from __future__ import annotations

import keras

import resnet_spec as rs

from .layers import RadixGap, SplitAttention, make, pad_for


def apply(layer: rs.plan.Layer, x, zero_init: bool = False):
    """`layer` applied to `x`, with PyTorch's explicit padding in front of a conv."""
    if isinstance(layer, rs.Conv):
        pad = pad_for(layer)
        if pad is not None:
            x = pad(x)
    return make(layer, zero_init)(x)


def relu(x, name: str):
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _last(block: rs.Block, layer: rs.plan.Layer, zero_init_residual: bool) -> bool:
    return zero_init_residual and layer is block.layers[-1]


def output_name(block: rs.Block) -> str:
    """The Keras layer whose output is the block's output (see _merge)."""
    return f"{block.name}.add" if block.kind.startswith("preact") else f"{block.name}.add_relu"


def _merge(block: rs.Block, out, shortcut):
    """The residual sum, then a ReLU except in pre-activation blocks."""
    out = keras.layers.Add(name=f"{block.name}.add")([out, shortcut])
    return out if block.kind.startswith("preact") else relu(out, f"{block.name}.add")


def _shortcut(block: rs.Block, x):
    for layer in block.shortcut:
        x = apply(layer, x)
    return x


def conv_bn_block(block: rs.Block, x, zero_init_residual: bool = False):
    """Basic and bottleneck blocks: (conv, bn) pairs with a ReLU between them, the shortcut
    added before the final ReLU (ResNet v1.5: the stride sits on the 3x3 conv)."""
    identity = _shortcut(block, x)
    out = x
    for layer in block.layers:
        out = apply(layer, out, _last(block, layer, zero_init_residual))
        if isinstance(layer, rs.BatchNorm) and layer is not block.layers[-1]:
            out = relu(out, layer.name)
    return _merge(block, out, identity)


def split_attention_block(block: rs.Block, x, zero_init_residual: bool = False):
    """ResNeSt bottleneck: conv1, the split-attention conv2 with avd pooling after (or before)
    it instead of a strided conv, conv3; avg-down shortcut."""
    identity = _shortcut(block, x)
    get = block.layer
    out = relu(apply(get("bn1"), apply(get("conv1"), x)), get("bn1").name)
    avd = get("avd_layer") if block.has("avd_layer") else None
    if avd is not None and block.avd_first:
        out = apply(avd, out)

    # Split-attention conv: radix splits from one grouped conv, attention from their sum.
    name = f"{block.name}.conv2"
    splits = relu(apply(get("conv2.bn0"), apply(get("conv2.conv"), out)), get("conv2.bn0").name)
    gap = RadixGap(block.radix, name=f"{name}_gap")(splits)
    gap = relu(apply(get("conv2.bn1"), apply(get("conv2.fc1"), gap)), get("conv2.bn1").name)
    logits = apply(get("conv2.fc2"), gap)
    out = SplitAttention(block.radix, block.groups, name=f"{name}_attention")([splits, logits])

    if avd is not None and not block.avd_first:
        out = apply(avd, out)
    out = apply(get("conv3"), out)
    out = apply(get("bn3"), out, zero_init_residual)
    return _merge(block, out, identity)


def preact_block(block: rs.Block, x, zero_init_residual: bool = False):
    """Pre-activation block (He et al. 2016): BN-ReLU-conv units; the projection shortcut is
    fed from the first normalised input; no activation after the sum."""
    shortcut = x
    out = x
    for layer in block.layers:
        if isinstance(layer, rs.BatchNorm):
            out = relu(apply(layer, out), layer.name)
            if layer.name == f"{block.name}.bn1" and block.shortcut:
                shortcut = _shortcut(block, out)
        else:
            out = apply(layer, out, _last(block, layer, zero_init_residual))
    return _merge(block, out, shortcut)


BLOCK_FUNCTIONS = {
    "basic": conv_bn_block,
    "bottleneck": conv_bn_block,
    "splat_bottleneck": split_attention_block,
    "preact_basic": preact_block,
    "preact_bottleneck": preact_block,
}
