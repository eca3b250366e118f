"""Train-mode parity: one training step in both frameworks from the same weights.

One forward pass with batch statistics (tapped like the eval comparison), the gradients of one
scalar loss for every parameter, one plain SGD step, then every parameter and BatchNorm running
statistic. The models given are not changed: the step runs on copies, at the precision asked
for (TRAIN_PRECISION by default), and with the float64 reference the same step runs on a float64 copy
of the torch model, every row held to the envelope around it (see report.TapResult). Each run
is measured against a float64 step with the ReLU gates that its own rounding decided (gates).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

import resnet_spec as rs

from . import gates, porting, taps
from .metrics import difference, gradient_difference
from .precision import (keras_context, keras_copy, keras_numpy, model_dtype, torch_autocast, torch_native_kernels,
                        torch_numpy)
from .report import EVAL_TOLERANCE, GRAD_TOLERANCE, ParityReport, tap_result

# Keras (and TensorFlow) load when a step runs, so that this module's constants stay light.

LEARNING_RATE = 0.1  # of the one plain SGD step that train-mode checks take
# The train step's default: float32 meets the envelope in every family on every backend, once
# each run is measured against a float64 step with its own rounding-decided ReLU gates (gates;
# docs/architecture.md, Train mode).
TRAIN_PRECISION = "float32"


@dataclass
class Step:
    """What one training step gave, all in PyTorch's names and layouts (maps NHWC), as numpy."""

    taps: dict  # tap name -> forward output with batch statistics
    grads: dict  # parameter key -> gradient of the loss
    state: dict  # state_dict key -> value after the step (parameters and running statistics)
    loss_weights: np.ndarray | None = None  # NCHW, the weights of the loss (see weighted_sum)
    relus: dict = field(default_factory=dict)  # ReLU name -> its input (float64) or output, NCHW


def train_step_report(torch_model, keras_model, x: np.ndarray, seed: int = 0,
                      precision: str = TRAIN_PRECISION, reference: bool = True) -> ParityReport:
    """One training step on copies of both models at `precision`; with `reference`, the rows
    are held to the envelope around the same step in float64 (see module docstring)."""
    spec = torch_model.spec
    report = ParityReport(spec.name, "train", tuple(x.shape), precision=precision,
                          reference="float64" if reference else None)
    float64 = torch_step(torch_model, x, seed, "float64", record="inputs") if reference else None
    record = "outputs" if reference else None
    theirs = torch_step(torch_model, x, seed, precision, record=record)
    # A second sample of PyTorch's rounding (see report.TapResult.torch_dev).
    variant = torch_step(torch_model, x, seed, precision, native=True, record=record) if reference else None
    with keras_context(precision):
        dtype = model_dtype(precision)
        ours = keras_step(keras_copy(keras_model, precision), x.astype(dtype), theirs.loss_weights.astype(dtype),
                          relus=reference)
    # Each run against a float64 step that takes its own gates where rounding decides them.
    if reference:
        references = following_references(torch_model, x, seed, float64, {"torch": theirs, "torch_native": variant,
                                                                          "keras": ours})
        report.followed_gates = {run: gates.count(g) for run, (_, g) in references.items()}
        steps = tuple(step for step, _ in references.values())

    def row(name, kind, part, tolerance=EVAL_TOLERANCE, measure=difference):
        refs = tuple(getattr(step, part)[name] for step in steps) if reference else None
        alt = getattr(variant, part)[name] if reference else None
        return tap_result(name, kind, getattr(theirs, part)[name], getattr(ours, part)[name], tolerance, refs,
                          measure, alt)

    report.rows += [row(name, kind, "taps") for name, kind in torch_model.plan.taps().items()]
    grads = (float64 or theirs).grads
    floor = 1e-6 * max(float(np.abs(g).max()) for g in grads.values())
    measure = functools.partial(gradient_difference, floor=floor)
    report.rows += [row(key, "gradient", "grads", GRAD_TOLERANCE, measure) for key in theirs.grads]
    buffers = {key for key, _ in torch_model.named_buffers()}
    report.rows += [row(key, "buffer" if key in buffers else "parameter", "state") for key in ours.state]
    return report


def following_references(torch_model, x: np.ndarray, seed: int, float64: Step, runs: dict) -> dict:
    """run name -> (the float64 step that takes that run's ReLU gates where rounding decides
    them, those gates): `float64` itself where there are none (see gates)."""
    torch_runs = [runs["torch"].relus, runs["torch_native"].relus]
    steps: dict = {}  # one float64 step per distinct set of gates
    references = {}
    for run, step in runs.items():
        followed = gates.decided_by_rounding(float64.relus, torch_runs, step.relus)
        key = tuple((name, index.tobytes(), open_.tobytes()) for name, (index, open_) in followed.items())
        if key not in steps:
            steps[key] = torch_step(torch_model, x, seed, "float64", followed=followed) if followed else float64
        references[run] = (steps[key], followed)
    return references


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


def torch_step(torch_model, x: np.ndarray, seed: int, precision: str, native: bool = False,
               record: str | None = None, followed: gates.Gates | None = None) -> Step:
    """The step on a copy of the torch model: in float64 or float32, or float32 under autocast;
    with `native`, on PyTorch's own CPU kernels (precision.torch_native_kernels). `record`
    ("inputs" or "outputs") keeps what each ReLU saw or gave; the `followed` gates are set as
    given (see gates)."""
    dtype = model_dtype(precision)
    model = copy.deepcopy(torch_model).to(getattr(torch, dtype)).train()
    if followed:
        gates.follow(model, followed)
    relus = gates.record(model, inputs=record == "inputs") if record else {}
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
    return Step({k: taps.nhwc(torch_numpy(v)) for k, v in outputs.items()}, grads, state, weights,
                {k: torch_numpy(v) for k, v in relus.items()})


def keras_step(k_model, x: np.ndarray, weights: np.ndarray, relus: bool = False) -> Step:
    """The same step on a Keras model (changed in place): the forward updating its moving
    statistics once, the gradients of the loss weighted by `weights` (NCHW) by the backend's
    own autodiff, the SGD step. With `relus`, every ReLU's output is kept too."""
    from .frameworks import keras
    from .gradients import value_and_grad

    names, tapped = taps.keras_tapped_model(k_model)
    relu_names = gates.relu_names(k_model.plan) if relus else []
    if relu_names:  # the ReLUs' outputs first: the loss reads the last output (weighted_sum)
        backend = keras.backend.backend()
        relu_layers = [k_model.get_layer(rs.keras_name(name, backend)) for name in relu_names]
        tapped = keras.Model(tapped.input, [layer.output for layer in relu_layers] + list(tapped.outputs))
    variables = porting.keras_variable_map(k_model)  # torch key -> (variable, tensor transform)
    _, outputs, grads = value_and_grad(tapped, taps.nhwc(x), weighted_sum, taps.nhwc(weights))
    seen = {name: taps.nchw(keras_numpy(out)) for name, out in zip(relu_names, outputs)}
    outputs = outputs[len(relu_names):]
    grad_of = {id(var): g for var, g in zip(tapped.trainable_variables, grads)}
    grads = {}
    for key, (var, t) in variables.items():
        if var.trainable:
            g = grad_of[id(var)]
            grads[key] = t.to_torch(keras_numpy(g))
            var.assign(var.value - LEARNING_RATE * g)
    state = {key: t.to_torch(keras_numpy(var.value)) for key, (var, t) in variables.items()}
    return Step(dict(zip(names, map(keras_numpy, outputs))), grads, state, relus=seen)
