"""The ResNet model: stem, stages of blocks and head, all laid out by the spec's plan."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import resnet_spec as rs

from .blocks import BLOCK_CLASSES
from .layers import make


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

        if spec.stem == "deep":
            # nn.Sequential(conv, bn, relu, conv, bn, relu, conv): indices match the plan's names.
            parts: list[nn.Module] = []
            for layer in p.stem:
                if layer.name.startswith("conv1."):
                    parts.append(make(layer))
                    if isinstance(layer, rs.BatchNorm):
                        parts.append(nn.ReLU(inplace=True))
            self.conv1 = nn.Sequential(*parts)
        else:
            self.conv1 = make(p.stem[0])
        names = {layer.name: layer for layer in p.stem}
        self.bn1 = make(names["bn1"]) if "bn1" in names else None
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = make(names["maxpool"]) if "maxpool" in names else None

        block_cls = BLOCK_CLASSES[spec.block]
        for stage_name, stage in zip(p.stage_names, p.stages):
            self.add_module(stage_name, nn.Sequential(*(block_cls(b) for b in stage)))

        head = {layer.name: layer for layer in p.head}
        self.bn_final = make(head["bn_final"]) if "bn_final" in head else None
        self.dropout = nn.Dropout(spec.drop_rate) if spec.drop_rate > 0 else None
        self.fc = make(head["fc"]) if "fc" in head else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation; with zero_init_residual, every residual branch starts
        as zero (its last BatchNorm scale, or for pre-activation blocks its last conv)."""
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
        if self.spec.zero_init_residual:
            for block in self.plan.blocks:
                nn.init.zeros_(self.get_submodule(block.layers[-1].name).weight)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        if self.maxpool is not None:
            x = self.maxpool(x)
        return x

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output; for pre-activation networks the last one is normalised."""
        _check_input(x, self.spec.in_channels)
        x = self.forward_stem(x)
        features = []
        for stage_name in self.plan.stage_names:
            x = getattr(self, stage_name)(x)
            features.append(x)
        if self.bn_final is not None:
            features[-1] = F.relu(self.bn_final(features[-1]))
        return features

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.pooling == "avg":
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        elif self.spec.pooling == "max":
            x = torch.flatten(F.adaptive_max_pool2d(x, 1), 1)
        if self.dropout is not None:
            x = self.dropout(x)
        return x if self.fc is None else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        features = self.forward_features(x)
        if self.spec.features_only:
            return features
        return self.forward_head(features[-1])


def _check_input(x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"expected a batch of images shaped (N, {channels}, H, W) (NCHW), got shape {tuple(x.shape)}"
        )
