"""Where the two frameworks are observed: the same named points in forward order.

Tap names come from the plan: "stem", each block ("layer1.0"), each stage ("layer1", the
output of its last block, before a pre-activation network's final BatchNorm) and "output"
(what the model returns, unless it returns a list of feature maps).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import resnet_spec as rs

# Keras model -> (tap names, a model with every tap as an output); built once per model.
_TAPPED = weakref.WeakKeyDictionary()


def tap_kinds(spec: rs.ResNetSpec) -> "OrderedDict[str, str]":
    """Tap name -> kind ("stem", "block", "stage", "output"), in forward order."""
    p = rs.plan(spec)
    taps = OrderedDict(stem="stem")
    for stage_name, stage in zip(p.stage_names, p.stages):
        taps.update((b.name, "block") for b in stage)
        taps[stage_name] = "stage"
    if not spec.features_only:
        taps["output"] = "output"
    return taps


def torch_taps(model, x) -> "OrderedDict[str, object]":
    """Run a resnet_torch model on `x` and return every tap's output (torch tensors)."""
    p = model.plan
    seen: dict[str, object] = {}

    def keep(name):
        def hook(module, inputs, output):
            seen[name] = output.clone()  # later in-place ReLUs must not change what we saw

        return hook

    def keep_input(module, inputs):
        seen["stem"] = inputs[0].clone()

    handles = [model.get_submodule(p.stage_names[0]).register_forward_pre_hook(keep_input)]
    for stage_name, stage in zip(p.stage_names, p.stages):
        handles.append(model.get_submodule(stage_name).register_forward_hook(keep(stage_name)))
        handles += [model.get_submodule(b.name).register_forward_hook(keep(b.name)) for b in stage]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    if not model.spec.features_only:
        seen["output"] = out
    return OrderedDict((name, seen[name]) for name in tap_kinds(model.spec))


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
