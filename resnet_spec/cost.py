"""Parameter and multiply-accumulate counts computed from the plan alone, without building a model."""

from __future__ import annotations

from dataclasses import dataclass

from .geometry import output_size
from .plan import Plan, plan
from .spec import ResNetSpec
from .steps import BatchNorm, Conv, Linear, SplitAttention


@dataclass(frozen=True)
class Counts:
    params: int  # trainable: PyTorch parameters, Keras trainable weights
    buffers: int  # BatchNorm running mean and variance: Keras non-trainable weights


def count_parameters(spec_or_plan: ResNetSpec | Plan) -> Counts:
    layers = _as_plan(spec_or_plan).weighted_layers()
    params = sum(layer.num_params for layer in layers)
    buffers = sum(2 * layer.channels for layer in layers if isinstance(layer, BatchNorm))
    return Counts(params, buffers)


def _path_macs(steps, size) -> tuple[int, tuple[int, int]]:
    macs = 0
    for step in steps:
        if isinstance(step, SplitAttention):
            m, out = _path_macs(step.splits, size)
            macs += m + _path_macs(step.attention, (1, 1))[0]  # the attention acts on pooled maps
        else:
            out = output_size(step, size)
            if isinstance(step, Conv):
                o, i, kh, kw = step.weight_shape
                macs += out[0] * out[1] * o * i * kh * kw
            elif isinstance(step, Linear):
                macs += step.in_features * step.out_features
        size = out
    return macs, size


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
        m, out = _path_macs(block.branch, hw)
        macs += m + _path_macs(block.shortcut, hw)[0]
        hw = out
    return macs + _path_macs(p.final + p.head, hw)[0]


def _as_plan(x: ResNetSpec | Plan) -> Plan:
    return x if isinstance(x, Plan) else plan(x)
