"""Train-mode parity: one training step in both frameworks from the same weights.

One forward pass with batch statistics (tapped like the eval comparison), the gradients of one
scalar loss for every parameter, one plain SGD step, then every parameter and BatchNorm running
statistic. The models given are not changed: the step runs on copies, in float64 by default
(see train_step_report).
"""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import torch

from . import porting, taps
from .metrics import gradient_difference
from .report import EVAL_TOLERANCE, GRAD_TOLERANCE, ParityReport, TapResult, tap_result

# Keras (and TensorFlow) load when a step runs, so that this module's constants stay light.

LEARNING_RATE = 0.1  # of the one plain SGD step that train-mode checks take
TRAIN_DTYPE = "float64"


def train_step_report(torch_model, keras_model, x: np.ndarray, seed: int = 0,
                      dtype: str = TRAIN_DTYPE) -> ParityReport:
    """One training step on copies of both models, computed in `dtype`.

    float64 by default: with batch statistics, float32 itself is too coarse for the contract's
    bounds in deep bottleneck networks. Measured on resnet50 with random weights (batch 4,
    64x64), PyTorch float32 against PyTorch float64 differs by 1.6e-2 relative in one gradient
    tensor and by 3e-5 in the train-mode forward, because BatchNorm backward subtracts nearly
    equal terms. In float64 the two frameworks can be held to the bounds; float32 may be asked
    for and holds for shallow networks.
    """
    spec = torch_model.spec
    report = ParityReport(spec.name, "train", tuple(x.shape))
    t_model = copy.deepcopy(torch_model).to(getattr(torch, dtype)).train()
    with float64_enabled(dtype):
        k_model = keras_copy(keras_model, dtype)
        _step_and_compare(t_model, k_model, x.astype(dtype), seed, report)
    return report


def float64_enabled(dtype: str):
    """A context in which the Keras backend computes in `dtype`: JAX truncates float64 to float32
    unless its x64 mode is on, so there it is switched on for the block; elsewhere nothing."""
    from .frameworks import keras_backend

    if dtype == "float64" and keras_backend() == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def keras_copy(keras_model, dtype: str):
    """A new resnet_tf model of the same spec and weights, with variables of `dtype`."""
    import resnet_tf

    from .frameworks import keras

    # Layers take their dtype from the global policy, keras.Input from floatx: set both.
    previous = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_dtype_policy(dtype)
    keras.config.set_floatx(dtype)
    try:
        copy_ = resnet_tf.ResNet(keras_model.spec, input_shape=keras_model.input_shape[1:])
    finally:
        keras.config.set_dtype_policy(previous[0])
        keras.config.set_floatx(previous[1])
    return porting.state_dict_to_keras(porting.keras_to_state_dict(keras_model), copy_)


def weighted_sum(outputs, weights):
    """The scalar loss of the train-mode check: the last tap weighted by fixed random numbers,
    averaged (a sum over the count: Keras' ops.mean computes in float32 off TensorFlow)."""
    from .frameworks import keras

    weights = keras.ops.convert_to_tensor(weights)
    return keras.ops.sum(outputs[-1] * weights) / math.prod(weights.shape)


def _step_and_compare(t_model, k_model, x, seed, report):
    from .frameworks import keras
    from .gradients import value_and_grad

    kinds = t_model.plan.taps()
    # Torch: tapped forward with batch statistics, loss, gradients, SGD step.
    t_out = taps.torch_taps(t_model, torch.from_numpy(x))
    out = t_out.get("output", next(reversed(t_out.values())))
    weights = np.random.default_rng(seed).standard_normal(tuple(out.shape)).astype(x.dtype)
    (out * torch.from_numpy(weights)).mean().backward()
    t_grads = {n: p.grad.numpy().copy() for n, p in t_model.named_parameters()}
    with torch.no_grad():
        for p in t_model.parameters():
            p -= LEARNING_RATE * p.grad

    # Keras: the same forward (updating its moving statistics once), loss and gradients, with
    # the backend's own autodiff.
    names, tapped = taps.keras_tapped_model(k_model)
    variables = porting.keras_variable_map(k_model)  # torch key -> (variable, tensor transform)
    # A sum over the count, not ops.mean, which Keras computes in float32 off TensorFlow.
    _, outputs, grads = value_and_grad(tapped, taps.nhwc(x), weighted_sum, taps.nhwc(weights))
    k_out = dict(zip(names, outputs))  # the last tap is the output, or the last stage
    grad_of = {id(var): g for var, g in zip(tapped.trainable_variables, grads)}
    trainable = [(key, var, t, grad_of[id(var)]) for key, (var, t) in variables.items() if var.trainable]
    for _, var, _, g in trainable:
        var.assign(var.value - LEARNING_RATE * g)

    for name, kind in kinds.items():
        ref = taps.nhwc(t_out[name].detach().numpy())
        report.rows.append(tap_result(name, kind, ref, keras.ops.convert_to_numpy(k_out[name]), EVAL_TOLERANCE))
    floor = 1e-6 * max(float(np.abs(g).max()) for g in t_grads.values())
    for key, var, t, g in trainable:
        diff = gradient_difference(t_grads[key], t.to_torch(keras.ops.convert_to_numpy(g)), floor)
        report.rows.append(TapResult.of(key, "gradient", t_grads[key].shape, diff, GRAD_TOLERANCE))
    state = t_model.state_dict()
    for key, (var, t) in variables.items():
        kind = "parameter" if var.trainable else "buffer"
        value = keras.ops.convert_to_numpy(var.value)
        report.rows.append(tap_result(key, kind, state[key].numpy(), t.to_torch(value), EVAL_TOLERANCE))
