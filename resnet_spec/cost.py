"""Parameter and multiply-accumulate counts computed from the plan alone, without building a model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .plan import BatchNorm, Block, Conv, Layer, Linear, Plan, Pool, ZeroPadShortcut, plan
from .spec import ResNetSpec


@dataclass(frozen=True)
class Counts:
    params: int  # trainable: PyTorch parameters, Keras trainable weights
    buffers: int  # BatchNorm running mean and variance: Keras non-trainable weights


def count_parameters(spec_or_plan: ResNetSpec | Plan) -> Counts:
    p = _as_plan(spec_or_plan)
    layers = p.weighted_layers()
    params = sum(layer.num_params for layer in layers)
    buffers = sum(2 * layer.channels for layer in layers if isinstance(layer, BatchNorm))
    return Counts(params, buffers)


def _out_size(n: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= n + padding:
        out -= 1  # PyTorch drops a last window that would start in the padding
    return out


def output_size(layer: Layer, size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after `layer`, by PyTorch's rules (floor, or ceil_mode for pools)."""
    if isinstance(layer, Conv):
        return tuple(_out_size(n, layer.kernel_size, layer.stride, layer.padding, layer.dilation) for n in size)
    if isinstance(layer, Pool):
        return tuple(
            _out_size(n, layer.kernel_size, layer.stride, layer.padding, ceil=layer.ceil_mode) for n in size
        )
    if isinstance(layer, ZeroPadShortcut):
        return tuple(-(-n // layer.stride) for n in size)
    return size


def _conv_macs(conv: Conv, out: tuple[int, int]) -> int:
    o, i, kh, kw = conv.weight_shape
    return out[0] * out[1] * o * i * kh * kw


def _path_macs(layers, size, pooled_names=()) -> tuple[int, tuple[int, int]]:
    macs = 0
    for layer in layers:
        if isinstance(layer, Conv):
            if layer.name in pooled_names:  # split-attention fc layers act on a 1x1 map
                macs += _conv_macs(layer, (1, 1))
                continue
            size = output_size(layer, size)
            macs += _conv_macs(layer, size)
        elif isinstance(layer, (Pool, ZeroPadShortcut)):
            size = output_size(layer, size)
    return macs, size


def _block_macs(block: Block, size):
    pooled = {f"{block.name}.conv2.fc1", f"{block.name}.conv2.fc2"}
    macs, out = _path_macs(block.layers, size, pooled)
    macs += _path_macs(block.shortcut, size)[0]
    return macs, out


def count_macs(spec_or_plan: ResNetSpec | Plan, size: int | tuple[int, int] | None = None) -> int:
    """Multiply-accumulates of convolutions and the classifier for one image of `size`
    (the variant's native input size by default). BatchNorm, pools and activations are not
    counted, as in torchvision's published figures."""
    p = _as_plan(spec_or_plan)
    if size is None:
        size = p.spec.input_size
    hw = (size, size) if isinstance(size, int) else tuple(size)
    macs, hw = _path_macs(p.stem, hw)
    for block in p.blocks:
        m, hw = _block_macs(block, hw)
        macs += m
    macs += sum(layer.in_features * layer.out_features for layer in p.head if isinstance(layer, Linear))
    return macs


def _as_plan(x: ResNetSpec | Plan) -> Plan:
    return x if isinstance(x, Plan) else plan(x)
