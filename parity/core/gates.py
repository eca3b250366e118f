"""ReLU gates that rounding decides, in the train-mode envelope.

A ReLU whose float64 input lies within float32 rounding of zero may open in one float32 run and
stay shut in float64, or the reverse. The forward values hardly move, but that element's
gradient passes whole or not at all: in wide_resnet50_2 (batch 3 at 67x61, so 3x2 pixels in
layer4) such gates in Keras' float32 run moved its gradients up to 1.2e-1 from float64, where
PyTorch's were 5e-6. Which run flips which gate is chance (each run of that network flipped a
few, PyTorch's too), so no multiple of PyTorch's deviation bounds it.

So each run below float64 is measured against a float64 step that takes that run's decision at
such gates, and there only. A gate counts as decided by rounding when its float64 input is no
farther from zero than ENVELOPE_MULTIPLE times PyTorch's largest deviation from float64 on that
ReLU's output (the larger of its two runs). A porting error moves ReLU inputs by far more than
PyTorch's rounding does; its gates are not followed, and its gradients stay wrong.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import resnet_spec as rs

from .report import ENVELOPE_MULTIPLE

# ReLU name -> (flat indices into its NCHW map, in C order; whether the gate is open there)
Gates = dict[str, tuple[np.ndarray, np.ndarray]]


def relu_names(plan: rs.Plan) -> list[str]:
    """Every ReLU step of the plan, in forward order (the names of its modules and layers)."""
    return [step.name for step in plan.all_layers() if isinstance(step, rs.ReLU)]


def record(model: nn.Module, inputs: bool) -> dict[str, torch.Tensor]:
    """Hooks on every ReLU of a resnet_torch model that keep a copy of its input (`inputs`) or
    of its output on each call; returns the dict they fill. A copy: the ReLUs work in place."""
    seen: dict[str, torch.Tensor] = {}
    for name in relu_names(model.plan):
        module = model.get_submodule(name)
        if inputs:
            module.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, args[0].detach().clone()))
        else:
            module.register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, out.detach().clone()))
    return seen


class FollowedReLU(nn.Module):
    """A ReLU, except at the given elements, whose gates are set open or shut: x times its gate,
    so the gradient passes exactly where the gate is open."""

    def __init__(self, index: np.ndarray, open_: np.ndarray):
        super().__init__()
        self.index = torch.from_numpy(np.asarray(index, np.int64))
        self.open = torch.from_numpy(np.asarray(open_, bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = (x > 0).reshape(-1).clone()
        gate[self.index] = self.open
        return x * gate.reshape(x.shape).to(x.dtype)


def follow(model: nn.Module, gates: Gates) -> None:
    """Swap the ReLUs of a resnet_torch model (a copy: this changes it) for FollowedReLUs."""
    for name, (index, open_) in gates.items():
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, FollowedReLU(index, open_))


def decided_by_rounding(float64_inputs: dict, torch_outputs: list[dict], run_outputs: dict) -> Gates:
    """The gates where `run_outputs` (one run's ReLU outputs) disagree with float64 within
    rounding (see the module docstring): float64_inputs are the float64 step's ReLU inputs,
    torch_outputs PyTorch's runs' ReLU outputs at the precision checked; all NCHW numpy."""
    gates: Gates = {}
    for name, x in float64_inputs.items():
        relu = np.maximum(x, 0)
        slack = ENVELOPE_MULTIPLE * max(float(np.abs(t[name] - relu).max()) for t in torch_outputs)
        ran_open = run_outputs[name] > 0
        flipped = ((x > 0) != ran_open) & (np.abs(x) <= slack)
        if flipped.any():
            index = np.flatnonzero(flipped)
            gates[name] = (index, ran_open.reshape(-1)[index])
    return gates


def count(gates: Gates) -> int:
    return sum(len(index) for index, _ in gates.values())
