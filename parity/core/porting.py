"""Weight porting between resnet_torch and resnet_tf, both ways.

The map is the identity on names (both frameworks use the plan's names) plus one tensor
transform per layer kind, driven only by `resnet_spec.plan(spec).weighted_layers()`:

    Conv       weight (O, I/groups, kh, kw)  <->  kernel (kh, kw, I/groups, O);  bias  <-> bias
    Linear     weight (out, in)              <->  kernel (in, out);              bias  <-> bias
    BatchNorm  weight, bias, running_mean, running_var
                                             <->  gamma, beta, moving_mean, moving_variance

Porting is strict: every source tensor is used, every target variable is assigned and every
shape is exact, or a `WeightMismatchError` lists what is missing, unexpected or mis-shaped.

`num_batches_tracked`: Keras keeps no such counter. Going to Keras it is accepted and dropped
(and may be absent: older checkpoints lack it). Going to PyTorch it is set to 0, the value of a
freshly built module; our BatchNorms use a fixed momentum (0.1), for which PyTorch never reads
the counter, so 0 changes no output and no training step.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

import resnet_torch  # noqa: F401  (loads triton before any TensorFlow import: see frameworks)
import resnet_spec as rs

# No Keras import: porting only touches the variables of the model it is given, and
# keras_archive writes Keras files through this module without loading TensorFlow.

NUM_BATCHES_TRACKED = 0  # the value written for every BatchNorm's num_batches_tracked


class WeightMismatchError(ValueError):
    """Source and target weights do not correspond one to one with equal shapes."""

    def __init__(self, missing=(), unexpected=(), shapes=(), context: str = "weights"):
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.shape_mismatches = sorted(shapes)  # (name, source shape, expected shape)
        parts = []
        if self.missing:
            parts.append(f"missing {len(self.missing)}: {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)}: {', '.join(self.unexpected)}")
        if self.shape_mismatches:
            parts.append(
                f"{len(self.shape_mismatches)} shape mismatch(es): "
                + ", ".join(f"{n} has shape {tuple(got)}, expected {tuple(want)}" for n, got, want in self.shape_mismatches)
            )
        super().__init__(f"{context} do not match the model: " + "; ".join(parts))


@dataclass(frozen=True)
class TensorTransform:
    """One tensor of one layer kind: its PyTorch suffix, its Keras attribute and the transform
    each way (numpy arrays in, numpy arrays out)."""

    torch_suffix: str
    keras_attr: str
    to_keras: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


def _same(a):
    return a


def _oihw_to_hwio(w):
    return np.transpose(w, (2, 3, 1, 0))


def _hwio_to_oihw(w):
    return np.transpose(w, (3, 2, 0, 1))


def tensors(layer: rs.Weighted) -> tuple[TensorTransform, ...]:
    """The tensors of one weighted layer: the one transform per layer kind."""
    if isinstance(layer, rs.Conv):
        kernel = (TensorTransform("weight", "kernel", _oihw_to_hwio, _hwio_to_oihw),)
        return kernel + ((TensorTransform("bias", "bias", _same, _same),) if layer.bias else ())
    if isinstance(layer, rs.Linear):
        return (
            TensorTransform("weight", "kernel", np.transpose, np.transpose),
            TensorTransform("bias", "bias", _same, _same),
        )
    if isinstance(layer, rs.BatchNorm):
        return tuple(
            TensorTransform(t, k, _same, _same)
            for t, k in (
                ("weight", "gamma"),
                ("bias", "beta"),
                ("running_mean", "moving_mean"),
                ("running_var", "moving_variance"),
            )
        )
    raise TypeError(f"{layer!r} has no weights")


def to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _spec_of(keras_model) -> rs.ResNetSpec:
    spec = getattr(keras_model, "spec", None)
    if not isinstance(spec, rs.ResNetSpec):
        raise TypeError(
            f"{type(keras_model).__name__} has no ResNetSpec; expected a resnet_tf model "
            "(resnet_tf.create_model or a .keras file saved from one)"
        )
    return spec


def keras_variable_map(keras_model) -> "dict[str, tuple[keras.Variable, TensorTransform]]":
    """PyTorch state_dict key -> (Keras variable, its TensorTransform), in resnet_torch's order,
    for every weighted layer of the Keras model's plan (num_batches_tracked has no variable).
    Raises WeightMismatchError if a plan tensor has no Keras variable or a Keras variable
    belongs to no plan tensor."""
    return _keras_variables(keras_model, rs.plan(_spec_of(keras_model)).weighted_layers())


def _keras_variables(keras_model, weighted) -> dict[str, tuple]:
    from resnet_tf import keras_name  # a Keras model is in hand: Keras is loaded already

    layers = {layer.name: layer for layer in keras_model.layers}
    mapping, missing = {}, []
    for layer in weighted:
        keras_layer = layers.get(keras_name(layer.name))
        for t in tensors(layer):
            var = getattr(keras_layer, t.keras_attr, None) if keras_layer is not None else None
            if var is None:
                missing.append(f"{layer.name}/{t.keras_attr}")
            else:
                mapping[f"{layer.name}.{t.torch_suffix}"] = (var, t)
    mapped = {id(var) for var, _ in mapping.values()}
    extra = [v.path for v in keras_model.weights if id(v) not in mapped]
    if missing or extra:
        raise WeightMismatchError(missing, extra, context=f"Keras model {keras_model.name!r}'s variables")
    return mapping


def check_state_dict(state_dict, spec: rs.ResNetSpec) -> None:
    """Raise WeightMismatchError unless the state_dict's keys and shapes are exactly the plan's
    (num_batches_tracked may be present or absent)."""
    p = rs.plan(spec)
    expected = {f"{layer.name}.{t.torch_suffix}": layer for layer in p.weighted_layers() for t in tensors(layer)}
    counters = set(p.counter_keys())
    keys = set(state_dict)
    missing = set(expected) - keys
    unexpected = keys - set(expected) - counters
    shapes = [
        (k, tuple(state_dict[k].shape), expected[k].tensor_shapes[k.rsplit(".", 1)[1]])
        for k in sorted(keys & set(expected))
        if tuple(state_dict[k].shape) != expected[k].tensor_shapes[k.rsplit(".", 1)[1]]
    ]
    if missing or unexpected or shapes:
        raise WeightMismatchError(missing, unexpected, shapes, context="state_dict")


def state_dict_to_keras(state_dict, keras_model):
    """Assign a PyTorch state_dict (torch tensors or numpy arrays) to a resnet_tf model in place;
    return the model. Raises WeightMismatchError unless the keys and shapes are exactly the
    plan's (num_batches_tracked may be present or absent, and is dropped)."""
    spec = _spec_of(keras_model)
    check_state_dict(state_dict, spec)
    mapping = _keras_variables(keras_model, rs.plan(spec).weighted_layers())
    for key, (var, t) in mapping.items():
        value = t.to_keras(to_numpy(state_dict[key]))
        if tuple(value.shape) != tuple(var.shape):  # a Keras model unlike its own spec
            raise WeightMismatchError(shapes=[(var.path, value.shape, var.shape)], context="state_dict")
        var.assign(value.astype(var.dtype, copy=False))
    return keras_model


def keras_to_state_dict(keras_model) -> "OrderedDict[str, torch.Tensor]":
    """A PyTorch state_dict (keys in resnet_torch's order) from a resnet_tf model's weights.
    Every BatchNorm's num_batches_tracked is NUM_BATCHES_TRACKED (0): see the module docstring."""
    weighted = rs.plan(_spec_of(keras_model)).weighted_layers()
    mapping = _keras_variables(keras_model, weighted)
    out = OrderedDict()
    for layer in weighted:
        for t in tensors(layer):
            var, _ = mapping[f"{layer.name}.{t.torch_suffix}"]
            # A copy: a variable's numpy view may be read-only (JAX) or the variable's own memory.
            out[f"{layer.name}.{t.torch_suffix}"] = torch.tensor(t.to_torch(var.numpy()))
        if isinstance(layer, rs.BatchNorm):
            out[f"{layer.name}.{rs.BN_COUNTER}"] = torch.tensor(NUM_BATCHES_TRACKED, dtype=torch.long)
    return out


def torch_to_keras(torch_model, keras_model=None):
    """A resnet_tf model holding `torch_model`'s weights; built from `torch_model.spec` unless
    `keras_model` is given (then filled in place and returned)."""
    if keras_model is None:
        import resnet_tf

        keras_model = resnet_tf.ResNet(torch_model.spec)
    return state_dict_to_keras(torch_model.state_dict(), keras_model)


def torch_model_holding(spec: rs.ResNetSpec, state_dict) -> "torch.nn.Module":
    """A resnet_torch model of `spec` whose parameters and buffers are the state_dict's own
    tensors (strictly: every key, exact shapes). Built on the meta device, so nothing is
    allocated or initialised only to be overwritten (1 s for wide_resnet101_2)."""
    with torch.device("meta"):
        model = resnet_torch.ResNet(spec)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model


def keras_to_torch(keras_model, torch_model=None):
    """A resnet_torch model holding `keras_model`'s weights; built from the Keras model's spec
    (which a .keras file keeps) unless `torch_model` is given (then loaded in place, strictly).
    num_batches_tracked becomes NUM_BATCHES_TRACKED (0)."""
    state_dict = keras_to_state_dict(keras_model)
    if torch_model is None:
        return torch_model_holding(_spec_of(keras_model), state_dict)
    target = torch_model.state_dict()
    missing = set(target) - set(state_dict)
    unexpected = set(state_dict) - set(target)
    shapes = [
        (k, tuple(state_dict[k].shape), tuple(target[k].shape))
        for k in sorted(set(target) & set(state_dict))
        if state_dict[k].shape != target[k].shape
    ]
    if missing or unexpected or shapes:
        raise WeightMismatchError(missing, unexpected, shapes, context="Keras weights")
    torch_model.load_state_dict(state_dict, strict=True)
    return torch_model
