"""Train-mode parity: one training step in both frameworks from the same weights.

One forward pass with batch statistics (tapped like the eval comparison), the gradients of one
scalar loss for every parameter, one plain SGD step, then every parameter and BatchNorm running
statistic. The models given are not changed: the step runs on copies, at the precision asked
for (TRAIN_PRECISION by default), and with the float64 reference the same step runs on a float64 copy
of the torch model, every row held to the envelope around it (see report.TapResult).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import porting, taps
from .metrics import difference, gradient_difference
from .precision import (keras_context, keras_copy, keras_numpy, model_dtype, torch_autocast, torch_native_kernels,
                        torch_numpy)
from .report import EVAL_TOLERANCE, GRAD_TOLERANCE, ParityReport, tap_result

# Keras (and TensorFlow) load when a step runs, so that this module's constants stay light.

LEARNING_RATE = 0.1  # of the one plain SGD step that train-mode checks take
# The train step's default. float32 meets the envelope for resnet, resnet_d, preact, resnext
# and cifar, not for wide_resnet50_2 and resnest50 on TensorFlow and JAX, whose CPU kernels'
# float32 gradients are up to 1e-2 from float64 where PyTorch's are 1e-5 (docs/architecture.md).
TRAIN_PRECISION = "float64"


@dataclass
class Step:
    """What one training step gave, all in PyTorch's names and layouts (maps NHWC), as numpy."""

    taps: dict  # tap name -> forward output with batch statistics
    grads: dict  # parameter key -> gradient of the loss
    state: dict  # state_dict key -> value after the step (parameters and running statistics)
    loss_weights: np.ndarray | None = None  # NCHW, the weights of the loss (see weighted_sum)


def train_step_report(torch_model, keras_model, x: np.ndarray, seed: int = 0,
                      precision: str = TRAIN_PRECISION, reference: bool = True) -> ParityReport:
    """One training step on copies of both models at `precision`; with `reference`, the rows
    are held to the envelope around the same step in float64 (see module docstring)."""
    spec = torch_model.spec
    report = ParityReport(spec.name, "train", tuple(x.shape), precision=precision,
                          reference="float64" if reference else None)
    float64 = torch_step(torch_model, x, seed, "float64") if reference else None
    theirs = torch_step(torch_model, x, seed, precision)
    # A second sample of PyTorch's rounding (see report.TapResult.torch_dev).
    variant = torch_step(torch_model, x, seed, precision, native=True) if reference else None
    with keras_context(precision):
        dtype = model_dtype(precision)
        ours = keras_step(keras_copy(keras_model, precision), x.astype(dtype), theirs.loss_weights.astype(dtype))

    def row(name, kind, part, tolerance=EVAL_TOLERANCE, measure=difference):
        ref, alt = (getattr(float64, part)[name], getattr(variant, part)[name]) if float64 else (None, None)
        return tap_result(name, kind, getattr(theirs, part)[name], getattr(ours, part)[name], tolerance, ref,
                          measure, alt)

    report.rows += [row(name, kind, "taps") for name, kind in torch_model.plan.taps().items()]
    grads = (float64 or theirs).grads
    floor = 1e-6 * max(float(np.abs(g).max()) for g in grads.values())
    measure = functools.partial(gradient_difference, floor=floor)
    report.rows += [row(key, "gradient", "grads", GRAD_TOLERANCE, measure) for key in theirs.grads]
    buffers = {key for key, _ in torch_model.named_buffers()}
    report.rows += [row(key, "buffer" if key in buffers else "parameter", "state") for key in ours.state]
    return report


def loss_weights(shape, seed: int, dtype) -> np.ndarray:
    """The fixed random weights of the train-mode loss (see weighted_sum), drawn in float32 at
    every precision, so that the float64 step weighs by the very same numbers."""
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32).astype(dtype)


def weighted_sum(outputs, weights):
    """The scalar loss of the train-mode check: the last tap weighted by fixed random numbers,
    averaged (a sum over the count: Keras' ops.mean computes in float32 off TensorFlow)."""
    from .frameworks import keras

    weights = keras.ops.convert_to_tensor(weights)
    return keras.ops.sum(outputs[-1] * weights) / math.prod(weights.shape)


def torch_step(torch_model, x: np.ndarray, seed: int, precision: str, native: bool = False) -> Step:
    """The step on a copy of the torch model: in float64 or float32, or float32 under autocast;
    with `native`, on PyTorch's own CPU kernels (precision.torch_native_kernels)."""
    dtype = model_dtype(precision)
    model = copy.deepcopy(torch_model).to(getattr(torch, dtype)).train()
    with torch_native_kernels(native):
        with torch_autocast(precision):  # the forward only, as autocast is meant to be used
            outputs = taps.torch_taps(model, torch.from_numpy(x.astype(dtype)))
        out = outputs.get("output", next(reversed(outputs.values())))
        weights = loss_weights(out.shape, seed, dtype)
        (out * torch.from_numpy(weights)).mean().backward()
    grads = {n: torch_numpy(p.grad).copy() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p -= LEARNING_RATE * p.grad
    state = {k: torch_numpy(v) for k, v in model.state_dict().items()}
    return Step({k: taps.nhwc(torch_numpy(v)) for k, v in outputs.items()}, grads, state, weights)


def keras_step(k_model, x: np.ndarray, weights: np.ndarray) -> Step:
    """The same step on a Keras model (changed in place): the forward updating its moving
    statistics once, the gradients of the loss weighted by `weights` (NCHW) by the backend's
    own autodiff, the SGD step."""
    from .gradients import value_and_grad

    names, tapped = taps.keras_tapped_model(k_model)
    variables = porting.keras_variable_map(k_model)  # torch key -> (variable, tensor transform)
    _, outputs, grads = value_and_grad(tapped, taps.nhwc(x), weighted_sum, taps.nhwc(weights))
    grad_of = {id(var): g for var, g in zip(tapped.trainable_variables, grads)}
    grads = {}
    for key, (var, t) in variables.items():
        if var.trainable:
            g = grad_of[id(var)]
            grads[key] = t.to_torch(keras_numpy(g))
            var.assign(var.value - LEARNING_RATE * g)
    state = {key: t.to_torch(keras_numpy(var.value)) for key, (var, t) in variables.items()}
    return Step(dict(zip(names, map(keras_numpy, outputs))), grads, state)
