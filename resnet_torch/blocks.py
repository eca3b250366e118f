"""The residual block: one class for every block kind, walking the plan's steps."""

from __future__ import annotations

import torch
from torch import nn

import resnet_spec as rs

from .layers import add_steps, run


class Block(nn.Module):
    """A residual block as its plan `Block` lays it out: the branch, the shortcut (on the block's
    input, or on the output of the branch step `shortcut_from`), their sum, then `after_add`.
    Children carry the plan's local names (conv1, bn1, ..., downsample), so state_dict keys
    are torchvision's and the official ResNeSt repository's."""

    def __init__(self, block: rs.Block):
        super().__init__()
        prefix = block.name + "."
        self.branch = add_steps(self, block.branch, prefix, shared=block.shortcut_from)
        self.shortcut = add_steps(self, block.shortcut, prefix)
        self.after_add = add_steps(self, block.after_add, prefix, owns_input=True)  # the fresh sum
        self.shortcut_from = block.shortcut_from and block.shortcut_from[len(prefix):]
        # A ReLU's backward reads its output, so after a branch ending in one (relu_before_add)
        # the sum must be a fresh tensor.
        self.add_in_place = not isinstance(block.branch[-1], rs.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = shortcut = x
        for name in self.branch:
            out = getattr(self, name)(out)
            if name == self.shortcut_from:
                shortcut = out
        # In place, as torchvision: a fresh sum costs 5% at batch 16 (resnet50). `out` is the
        # branch's own new tensor, never the block's input.
        if self.add_in_place:
            out += run(self, self.shortcut, shortcut)
        else:
            out = out + run(self, self.shortcut, shortcut)
        return run(self, self.after_add, out)
