"""Where the two frameworks are observed: the plan's taps (`resnet_spec.Plan.taps`), the same
named points in forward order in both."""

from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy as np

# Keras model -> (tap names, a model with every tap as an output); built once per model.
_TAPPED = weakref.WeakKeyDictionary()


def nhwc(a: np.ndarray) -> np.ndarray:
    """A PyTorch feature map (N, C, H, W) in Keras' layout (N, H, W, C); other ranks unchanged."""
    return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


def nchw(a: np.ndarray) -> np.ndarray:
    """A Keras feature map (N, H, W, C) in PyTorch's layout (N, C, H, W); other ranks unchanged."""
    return np.transpose(a, (0, 3, 1, 2)) if a.ndim == 4 else a


def torch_taps(model, x) -> "OrderedDict[str, object]":
    """Run a resnet_torch model on `x` (NCHW) and return every tap's output (torch tensors)."""
    return model.forward_taps(x)


def keras_tapped_model(model):
    """(tap names, a Keras model sharing `model`'s layers that outputs every tap)."""
    import keras

    if model not in _TAPPED:
        names = model.tap_layer_names()
        tapped = keras.Model(model.input, [model.get_layer(n).output for n in names.values()])
        _TAPPED[model] = (list(names), tapped)
    return _TAPPED[model]


def keras_taps(model, x, training: bool = False) -> "OrderedDict[str, object]":
    """Run a resnet_tf model on `x` (NHWC) and return every tap's output."""
    names, tapped = keras_tapped_model(model)
    return OrderedDict(zip(names, tapped(x, training=training)))
