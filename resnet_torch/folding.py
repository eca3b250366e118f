"""An inference fast path: BatchNorm folded into the convolution before it."""

from __future__ import annotations

import copy

import torch
from torch import nn

import resnet_spec as rs


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (a resnet_torch ResNet) for inference only, in which every BatchNorm
    that directly follows a conv (resnet_spec.foldable_pairs) is folded into that conv:

        w' = w * gamma / sqrt(var + eps),   b' = (b - mean) * gamma / sqrt(var + eps) + beta

    and replaced by nn.Identity. Computed in float64, stored in the model's dtype. The copy is
    in eval mode; training it would be wrong, since the batch statistics are gone.
    """
    folded = copy.deepcopy(model).eval()
    with torch.no_grad():
        for conv_desc, bn_desc in rs.foldable_pairs(folded.plan):
            conv = folded.get_submodule(conv_desc.name)
            bn = folded.get_submodule(bn_desc.name)
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            conv.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
            new_bias = (bias - bn.running_mean.double()) * scale + bn.bias.double()
            conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))
            parent, _, child = bn_desc.name.rpartition(".")
            setattr(folded.get_submodule(parent) if parent else folded, child, nn.Identity())
    folded.folded = True
    return folded
