"""torch.nn modules for the plan's layer descriptors, and the two layers PyTorch lacks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import resnet_spec as rs


def make(layer: rs.plan.Layer) -> nn.Module:
    """The torch module for one layer descriptor of the plan."""
    if isinstance(layer, rs.Conv):
        return nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=layer.bias,
        )
    if isinstance(layer, rs.BatchNorm):
        return nn.BatchNorm2d(layer.channels, eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, rs.Linear):
        return nn.Linear(layer.in_features, layer.out_features)
    if isinstance(layer, rs.Pool):
        if layer.is_identity:
            return nn.Identity()
        if layer.kind == "max":
            return nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding, ceil_mode=layer.ceil_mode)
        return nn.AvgPool2d(
            layer.kernel_size,
            layer.stride,
            layer.padding,
            ceil_mode=layer.ceil_mode,
            count_include_pad=layer.count_include_pad,
        )
    if isinstance(layer, rs.ZeroPadShortcut):
        return ZeroPadShortcut(layer.stride, layer.pad_before, layer.pad_after)
    raise TypeError(f"no torch module for layer descriptor {layer!r}")


class ZeroPadShortcut(nn.Module):
    """Option A shortcut of the CIFAR ResNets: subsample, then pad channels with zeros."""

    def __init__(self, stride: int, pad_before: int, pad_after: int):
        super().__init__()
        self.stride, self.pad_before, self.pad_after = stride, pad_before, pad_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels=({self.pad_before}, {self.pad_after})"


class SplitAttentionConv(nn.Module):
    """ResNeSt's split-attention 3x3 conv (SplAtConv2d in the official repository, same names).

    The conv produces `radix` splits of `channels` channels each; their sum is pooled and
    squeezed by fc1/fc2 into one logit per split and channel, and a softmax over the radix
    (per cardinal group) weights the splits before they are summed.
    """

    def __init__(self, block: rs.Block):
        super().__init__()
        self.conv = make(block.layer("conv2.conv"))
        self.bn0 = make(block.layer("conv2.bn0"))
        self.fc1 = make(block.layer("conv2.fc1"))
        self.bn1 = make(block.layer("conv2.bn1"))
        self.fc2 = make(block.layer("conv2.fc2"))
        self.relu = nn.ReLU(inplace=True)
        self.radix, self.cardinality = block.radix, block.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn0(self.conv(x)))
        batch = x.shape[0]
        splits = x.unflatten(1, (self.radix, -1))  # (N, radix, C, H, W)
        gap = splits.sum(1).mean((2, 3), keepdim=True)
        gap = self.relu(self.bn1(self.fc1(gap)))
        logits = self.fc2(gap).view(batch, self.cardinality, self.radix, -1)
        if self.radix > 1:
            attention = logits.softmax(dim=2).transpose(1, 2)  # (N, radix, card, C/card)
        else:
            attention = logits.sigmoid().transpose(1, 2)
        attention = attention.reshape(batch, self.radix, -1, 1, 1)
        return (splits * attention).sum(1)
