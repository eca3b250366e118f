"""torch.nn modules for the plan's step descriptors, and the layers PyTorch lacks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import resnet_spec as rs


def make(step: rs.Step, inplace: bool = True) -> nn.Module:
    """The torch module for one step of the plan. `inplace` lets a ReLU overwrite its input,
    which the caller allows only where nothing else reads that input."""
    if isinstance(step, rs.Conv):
        return nn.Conv2d(
            step.in_channels,
            step.out_channels,
            step.kernel_size,
            stride=step.stride,
            padding=step.padding,
            dilation=step.dilation,
            groups=step.groups,
            bias=step.bias,
        )
    if isinstance(step, rs.BatchNorm):
        return nn.BatchNorm2d(step.channels, eps=step.eps, momentum=step.momentum)
    if isinstance(step, rs.ReLU):
        return nn.ReLU(inplace=inplace)
    if isinstance(step, rs.Linear):
        return nn.Linear(step.in_features, step.out_features)
    if isinstance(step, rs.Pool):
        if step.is_identity:
            return nn.Identity()
        if step.kind == "max" and step.zero_pad:  # keras.applications' ZeroPadding2D, then the pool
            return nn.Sequential(nn.ZeroPad2d(step.padding),
                                 nn.MaxPool2d(step.kernel_size, step.stride, ceil_mode=step.ceil_mode))
        if step.kind == "max":
            return nn.MaxPool2d(step.kernel_size, step.stride, step.padding, ceil_mode=step.ceil_mode)
        return nn.AvgPool2d(
            step.kernel_size,
            step.stride,
            step.padding,
            ceil_mode=step.ceil_mode,
            count_include_pad=step.count_include_pad,
        )
    if isinstance(step, rs.ZeroPadShortcut):
        return ZeroPadShortcut(step.stride, step.pad_before, step.pad_after)
    if isinstance(step, rs.SplitAttention):
        return SplitAttentionConv(step)
    if isinstance(step, rs.GlobalPool):
        return GlobalPool(step.kind)
    if isinstance(step, rs.Flatten):
        return nn.Flatten(1)
    if isinstance(step, rs.Dropout):
        return nn.Dropout(step.rate)
    raise TypeError(f"no torch module for step {step!r}")


def attach(parent: nn.Module, path: str, module: nn.Module) -> None:
    """Register `module` on `parent` at the dotted `path`. The parts before the last are
    nn.Sequential containers, made when first needed ("conv1.0", "conv1.1", ...: one nn.Sequential
    "conv1"; "layer1.0": the block 0 of "layer1"), as torchvision, timm and the notebook nest their
    modules, so the state_dict keys are theirs."""
    for part in path.split(".")[:-1]:
        if part not in parent._modules:
            parent.add_module(part, nn.Sequential())
        parent = parent._modules[part]
    parent.add_module(path.rpartition(".")[2], module)


def add_steps(parent: nn.Module, steps, prefix: str, shared: str | None = None,
              owns_input: bool = False) -> tuple[str, ...]:
    """Register one module per step on `parent` (see attach), under its name relative to
    `prefix` ("layer1.0."), and return those names in order: `run` calls the steps one by one,
    never a container, since a container may also hold modules of another sequence (the
    notebook's "block2" holds the stem's pool and the first stage's blocks).

    A ReLU works in place unless it reads the output of the step named `shared` (which a shortcut
    reads too) or the sequence's input, which others may hold unless `owns_input`."""
    order: list[str] = []
    previous = None
    for step in steps:
        local = step.name[len(prefix):]
        inplace = owns_input if previous is None else previous != shared
        attach(parent, local, make(step, inplace))
        order.append(local)
        previous = step.name
    return tuple(order)


def run(parent: nn.Module, names: tuple[str, ...], x: torch.Tensor) -> torch.Tensor:
    """Call `parent`'s modules `names` in order (looked up each time, so a module swapped in by
    BatchNorm folding takes effect)."""
    for name in names:
        x = parent.get_submodule(name)(x)
    return x


class GlobalPool(nn.Module):
    """Average or max over the whole map, flattened to (N, C)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x, 1) if self.kind == "avg" else F.adaptive_max_pool2d(x, 1)
        return torch.flatten(pooled, 1)

    def extra_repr(self) -> str:
        return self.kind


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
    """ResNeSt's split-attention 3x3 conv (SplAtConv2d in the official repository, same names),
    as its plan step describes it (resnet_spec.SplitAttention)."""

    def __init__(self, step: rs.SplitAttention):
        super().__init__()
        prefix = step.name + "."
        self.splits = add_steps(self, step.splits, prefix)
        self.attention = add_steps(self, step.attention, prefix)
        self.radix, self.cardinality = step.radix, step.cardinality

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = run(self, self.splits, x)
        batch = x.shape[0]
        splits = x.unflatten(1, (self.radix, -1))  # (N, radix, C, H, W)
        gap = splits.sum(1).mean((2, 3), keepdim=True)
        logits = run(self, self.attention, gap).view(batch, self.cardinality, self.radix, -1)
        if self.radix > 1:
            attention = logits.softmax(dim=2).transpose(1, 2)  # (N, radix, card, C/card)
        else:
            attention = logits.sigmoid().transpose(1, 2)
        attention = attention.reshape(batch, self.radix, -1, 1, 1)
        return (splits * attention).sum(1)
