"""Helpers for tests, ours and our users': non-trivial weights for comparisons.

Default BatchNorm values (gamma 1, beta 0, mean 0, var 1) hide a swapped or mis-mapped vector, so
every comparison starts from weights where each tensor has distinct, non-trivial values.
"""

from __future__ import annotations

import math


def randomize_state_dict(state_dict, seed: int = 0, dtype=None):
    """Give every floating tensor of a PyTorch state_dict a random value, in place, and return it.

    Conv and linear weights are drawn with variance 1/fan_in so that activations stay of order
    one through a deep network; BatchNorm scales lie in [0.5, 1.5], shifts and running means
    around 0 with spread 0.2, running variances in [0.5, 2]; biases spread 0.1. Keys are
    classified by their suffix, so torchvision's and our state_dicts are handled alike.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    for key, t in state_dict.items():
        if not t.is_floating_point():
            continue
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "running_var":
            draw = ("uniform", 0.5, 2.0)
        elif leaf == "running_mean":
            draw = ("normal", 0.0, 0.2)
        elif leaf == "weight" and t.dim() == 1:  # BatchNorm scale
            draw = ("uniform", 0.5, 1.5)
        elif leaf == "weight":
            draw = ("normal", 0.0, 1.0 / math.sqrt(math.prod(t.shape[1:])))
        elif leaf == "bias" and key.replace(".bias", ".running_mean") in state_dict:
            draw = ("normal", 0.0, 0.2)  # BatchNorm shift
        else:
            draw = ("normal", 0.0, 0.1)
        # Drawn in place, in the tensor's own dtype: drawing float64 and casting took 4x as long
        # (3.7 s for wide_resnet101_2), which test suites pay for every network they randomise.
        target = t if dtype is None or dtype == t.dtype else torch.empty(t.shape, dtype=dtype)
        kind, a, b = draw
        with torch.no_grad():
            (target.uniform_ if kind == "uniform" else target.normal_)(a, b, generator=g)
            if target is not t:
                t.copy_(target)
    return state_dict


def randomize_torch(model, seed: int = 0):
    """Randomise every parameter and BatchNorm statistic of a torch module in place; return it.

    For our ResNets (a module with a `plan`), the last layer of every residual branch is then
    scaled by 1/sqrt(number of blocks), so each block adds a small correction to the residual
    stream as in trained networks. Without it the stream's scale and its float32 rounding
    errors grow with depth: for resnet1202 PyTorch float32 itself drifts 3.6e-5 (relative)
    from float64 by the last stage, with it 1e-6.
    """
    import torch

    randomize_state_dict(model.state_dict(), seed)
    plan = getattr(model, "plan", None)
    if plan is not None:
        scale = 1.0 / math.sqrt(len(plan.blocks))
        with torch.no_grad():
            for block in plan.blocks:
                model.get_submodule(block.residual_end.name).weight.mul_(scale)
    return model


def assert_parity(torch_model, keras_model, inputs, mode: str = "eval", **options):
    """Assert that the two models agree on `inputs` (NCHW) by the parity contract; return the
    report. `options` are compare's (seed, precision, reference, allow_tf32). The failure
    message names the first divergent layer and carries the table."""
    from .comparison import compare  # loads both frameworks: not at import

    report = compare(torch_model, keras_model, inputs, mode=mode, **options)
    if not report.ok:
        raise AssertionError(
            f"{report.model}: PyTorch and Keras diverge first at {report.first_divergence}\n"
            + report.table()
        )
    return report


def odd_size(spec) -> tuple[int, int]:
    """An odd, non-square input size near the variant's scale: where padding and pooling
    mistakes show (even sizes hide Keras' asymmetric "same" padding, squares a swapped axis).
    A classifier that reads a fixed-size map (spec.fixed_input) takes its native size only."""
    if spec.fixed_input:
        return (spec.input_size, spec.input_size)
    return (33, 31) if spec.input_size <= 64 else (75, 67)


def random_images(spec, batch: int = 2, size: tuple[int, int] | None = None, seed: int = 0):
    """Standard normal NCHW float32 images for `spec` (odd_size by default), seeded."""
    import numpy as np

    h, w = size or odd_size(spec)
    return np.random.default_rng(seed).standard_normal((batch, spec.in_channels, h, w)).astype(np.float32)
