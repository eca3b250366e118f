"""The ResNet model: stem, stages of blocks, final steps and head, all walked from the spec's plan."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

import resnet_spec as rs

from .blocks import Block
from .layers import add_steps, attach, run


class ResNet(nn.Module):
    """Any network of the ResNet family, built from a `resnet_spec.ResNetSpec`.

    `forward` returns logits, or pooled features when `include_top=False`, or the unpooled last
    feature map when in addition `pooling=None`; with `features_only=True` it returns the list of
    every stage's feature map (strides `self.plan.feature_strides`).
    """

    def __init__(self, spec: rs.ResNetSpec):
        super().__init__()
        self.spec = spec
        self.plan = p = rs.plan(spec)
        self.stem = add_steps(self, p.stem, "")
        for b in p.blocks:
            attach(self, b.name, Block(b))
        self.final = add_steps(self, p.final, "")
        self.head = add_steps(self, p.head, "")
        # Each stage runs as its container (layer1, ...), so hooks on it fire as on torchvision's,
        # unless the container holds more than the stage (the notebook's block2 also holds the
        # stem's pool, block5 the head's): then block by block.
        self.stage_runs = tuple(
            (name,) if len(self.get_submodule(name)) == len(stage) else tuple(b.name for b in stage)
            for name, stage in zip(p.stage_names, p.stages)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation; steps the plan marks zero_init (zero_init_residual: the
        last layer of every residual branch) start at zero, so each block starts as its shortcut."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()
        for layer in self.plan.weighted_layers():
            if getattr(layer, "zero_init", False):
                nn.init.zeros_(self.get_submodule(layer.name).weight)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return run(self, self.stem, x)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output; for pre-activation networks the last one after the final
        BatchNorm and ReLU."""
        _check_input(x, self.spec)
        x = self.forward_stem(x)
        features = []
        for names in self.stage_runs:
            x = run(self, names, x)
            features.append(x)
        features[-1] = run(self, self.final, features[-1])
        return features

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return run(self, self.head, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        features = self.forward_features(x)
        if self.spec.features_only:
            return features
        return self.forward_head(features[-1])

    def forward_taps(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """The output at every tap of the plan (`self.plan.taps()`), in forward order: the same
        computation as forward, observed. Nothing later overwrites a tap in place."""
        _check_input(x, self.spec)
        taps = OrderedDict(stem=self.forward_stem(x))
        x = taps["stem"]
        for stage_name, stage in zip(self.plan.stage_names, self.plan.stages):
            for block in stage:
                x = taps[block.name] = self.get_submodule(block.name)(x)
            taps[stage_name] = x
        if not self.spec.features_only:
            taps["output"] = self.forward_head(run(self, self.final, x))
        return taps


def _check_input(x: torch.Tensor, spec: rs.ResNetSpec) -> None:
    c, n = spec.in_channels, spec.input_size
    if x.dim() != 4 or x.shape[1] != c:
        raise ValueError(f"expected a batch of images shaped (N, {c}, H, W) (NCHW), got shape {tuple(x.shape)}")
    if spec.fixed_input and tuple(x.shape[2:]) != (n, n):
        raise ValueError(f"expected images shaped (N, {c}, {n}, {n}): {spec.name}'s classifier reads a fixed-size "
                         f"map (head_pool={spec.head_pool}); got shape {tuple(x.shape)} (include_top=False takes any size)")
