"""Residual blocks, one class per block kind of the spec. Every layer comes from the plan."""

from __future__ import annotations

import torch
from torch import nn

import resnet_spec as rs

from .layers import SplitAttentionConv, make


def _shortcut(block: rs.Block) -> nn.Module | None:
    if not block.shortcut:
        return None
    if len(block.shortcut) == 1 and isinstance(block.shortcut[0], rs.ZeroPadShortcut):
        return make(block.shortcut[0])  # no weights, so no Sequential index in the names
    return nn.Sequential(*(make(layer) for layer in block.shortcut))


class ResidualBlock(nn.Module):
    """Basic (two 3x3 convs) and bottleneck (1x1, 3x3, 1x1) blocks of ResNet v1.5: conv-BN
    units with a ReLU between them, the shortcut added before the last ReLU. In a bottleneck
    the stride sits on the 3x3 conv, which may be grouped (ResNeXt)."""

    def __init__(self, block: rs.Block):
        super().__init__()
        self.units = 2 if block.kind == "basic" else 3
        for i in range(1, self.units + 1):
            self.add_module(f"conv{i}", make(block.layer(f"conv{i}")))
            self.add_module(f"bn{i}", make(block.layer(f"bn{i}")))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        for i in range(2, self.units):
            out = self.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out)))
        out = getattr(self, f"bn{self.units}")(getattr(self, f"conv{self.units}")(out))
        out += identity  # in place, as torchvision: a fresh sum costs 5% at batch 16 (resnet50)
        return self.relu(out)


class SplitAttentionBottleneck(nn.Module):
    """ResNeSt bottleneck: the 3x3 conv is a split-attention conv, and a strided block
    downsamples with a 3x3 average pool ("avd") after (or before) it instead of a strided conv."""

    def __init__(self, block: rs.Block):
        super().__init__()
        self.conv1 = make(block.layer("conv1"))
        self.bn1 = make(block.layer("bn1"))
        self.avd_layer = make(block.layer("avd_layer")) if block.has("avd_layer") else None
        self.avd_first = block.avd_first
        self.conv2 = SplitAttentionConv(block)
        self.conv3 = make(block.layer("conv3"))
        self.bn3 = make(block.layer("bn3"))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        if self.avd_layer is not None and self.avd_first:
            out = self.avd_layer(out)
        out = self.conv2(out)
        if self.avd_layer is not None and not self.avd_first:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class PreActBlock(nn.Module):
    """Pre-activation block (He et al. 2016), basic or bottleneck: BN-ReLU-conv units, the
    projection shortcut fed from the first normalised input, no activation after the sum."""

    def __init__(self, block: rs.Block):
        super().__init__()
        self.units = 2 if block.kind == "preact_basic" else 3
        for i in range(1, self.units + 1):
            self.add_module(f"bn{i}", make(block.layer(f"bn{i}")))
            self.add_module(f"conv{i}", make(block.layer(f"conv{i}")))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        for i in range(2, self.units + 1):
            out = getattr(self, f"conv{i}")(self.relu(getattr(self, f"bn{i}")(out)))
        out += shortcut
        return out


BLOCK_CLASSES = {
    "basic": ResidualBlock,
    "bottleneck": ResidualBlock,
    "splat_bottleneck": SplitAttentionBottleneck,
    "preact_basic": PreActBlock,
    "preact_bottleneck": PreActBlock,
}
