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
from .report import EVAL_TOLERANCE, GRAD_TOLERANCE, ParityReport, TapResult

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
    record = "outputs" if reference else None
    theirs = torch_step(torch_model, x, seed, precision, record=record)
    # A second sample of PyTorch's rounding (see report.TapResult.torch_dev).
    variant = torch_step(torch_model, x, seed, precision, native=True, record=record) if reference else None
    with keras_context(precision):
        dtype = model_dtype(precision)
        ours = keras_step(keras_copy(keras_model, precision), x.astype(dtype), theirs.loss_weights.astype(dtype),
                          relus=reference)

    floor = 1e-6 * max(float(np.abs(g).max()) for g in theirs.grads.values())
    buffers = {key for key, _ in torch_model.named_buffers()}
    # (name, kind, part of a Step, tolerance, measure) of every row, in order
    rows = [(name, kind, "taps", EVAL_TOLERANCE, difference) for name, kind in torch_model.plan.taps().items()]
    rows += [(key, "gradient", "grads", GRAD_TOLERANCE, functools.partial(gradient_difference, floor=floor))
             for key in theirs.grads]
    rows += [(key, "buffer" if key in buffers else "parameter", "state", EVAL_TOLERANCE, difference)
             for key in ours.state]

    if reference:
        runs = {"torch": theirs, "torch_native": variant, "keras": ours}
        deviations, report.followed_gates = deviations_from_float64(torch_model, x, seed, runs, rows)
    for i, (name, kind, part, tolerance, measure) in enumerate(rows):
        ref, other = getattr(theirs, part)[name], getattr(ours, part)[name]
        devs = {}
        if reference:
            devs = {"torch_dev": max(deviations["torch"][i], deviations["torch_native"][i]),
                    "keras_dev": deviations["keras"][i]}
        report.rows.append(TapResult.of(name, kind, ref.shape, measure(ref, other), tolerance, **devs))
    return report


def deviations_from_float64(torch_model, x: np.ndarray, seed: int, runs: dict, rows: list) -> tuple[dict, dict]:
    """({run name: its deviation in every row}, {run name: how many ReLU gates rounding decided
    in it}): each run (a Step with its ReLU outputs) measured against the float64 step, or, where
    its rounding decided some gates, against a float64 step that takes them (see gates). One
    float64 step is held at a time: each holds the gradients and weights in float64, 1.1 GB in
    wide_resnet50_2."""

    def against(reference: Step, step: Step) -> list[float]:
        return [measure(getattr(reference, part)[name], getattr(step, part)[name]).max_rel
                for name, _, part, _, measure in rows]

    float64 = torch_step(torch_model, x, seed, "float64", record="inputs")
    deviations = {run: against(float64, step) for run, step in runs.items()}
    inputs = float64.relus
    del float64
    torch_relus = [runs["torch"].relus, runs["torch_native"].relus]
    decided = {run: gates.decided_by_rounding(inputs, torch_relus, step.relus) for run, step in runs.items()}
    last_key, last = None, None  # runs that decided the same gates share one step
    for run, followed in decided.items():
        if followed:
            key = tuple((name, index.tobytes(), open_.tobytes()) for name, (index, open_) in followed.items())
            if key != last_key:
                last = None
                last_key, last = key, torch_step(torch_model, x, seed, "float64", followed=followed)
            deviations[run] = against(last, runs[run])
    return deviations, {run: gates.count(followed) for run, followed in decided.items()}


def loss_weights(shape, seed: int, dtype) -> np.ndarray:
    """The fixed random weights of the train-mode loss (see weighted_sum), drawn in float32 at
    every precision, so that the float64 step weighs by the very same numbers."""
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32).astype(dtype)


def weighted_sum(outputs, weights):
    """The scalar loss of the train-mode check: the last tap weighted by fixed random numbers,
    averaged (a sum over the count: Keras' ops.mean computes in float32 off TensorFlow). A
    half-precision output is widened to the weights' float32 first, as PyTorch promotes it."""
    from .frameworks import keras

    weights = keras.ops.convert_to_tensor(weights)
    return keras.ops.sum(keras.ops.cast(outputs[-1], weights.dtype) * weights) / math.prod(weights.shape)


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
    grads = {n: torch_numpy(p.grad) for n, p in model.named_parameters()}  # the SGD step leaves .grad as it is
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
