"""The ResNet model as a Keras functional model, laid out by the spec's plan."""

from __future__ import annotations

import sys
from collections import OrderedDict

import keras

import resnet_spec as rs

from .blocks import block, output_name, walk
from .layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResNet(keras.Model):
    """Any network of the ResNet family, built from a `resnet_spec.ResNetSpec`; NHWC input.

    A functional model whose layers carry the plan's names ("conv1", "layer1.0.bn1",
    "layer2.0.conv2.fc1", "fc", ...), so weights map to PyTorch by name. It outputs logits,
    or pooled features when include_top=False, or the last feature map when in addition
    pooling=None; with features_only=True it outputs a list with every stage's feature map
    (strides `self.plan.feature_strides`; for pre-activation networks the last one after the
    final BatchNorm and ReLU).

    The spec is part of the model's config (`get_config()["spec"]`), so `self.spec` survives a
    `.keras` save and load: the parity package builds the matching PyTorch model from it.
    """

    def __init__(self, spec: rs.ResNetSpec | dict, input_shape=None, name: str | None = None, **kwargs):
        if isinstance(spec, dict):
            spec = rs.ResNetSpec.from_config(spec)
        if input_shape is None:  # any spatial size, unless the classifier reads a fixed-size map
            side = spec.input_size if spec.fixed_input else None
            input_shape = (side, side, spec.in_channels)
        _allow_graph_depth(spec)
        inputs = keras.Input(shape=tuple(input_shape), name="input")
        outputs, taps = _outputs(spec, inputs)
        super().__init__(inputs, outputs, name=name or spec.name, **kwargs)
        self._spec = spec
        self._taps = taps
        self._input_shape_arg = tuple(input_shape)

    @property
    def spec(self) -> rs.ResNetSpec:
        return self._spec

    @property
    def plan(self) -> rs.Plan:
        return rs.plan(self._spec)

    def tap_layer_names(self) -> "OrderedDict[str, str]":
        """Tap name -> the Keras layer whose output it is, for every tap of the plan
        (`self.plan.taps()`), in forward order."""
        return OrderedDict(self._taps)

    def get_config(self):
        return {
            "spec": self._spec.to_config(),
            "input_shape": list(self._input_shape_arg),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def _allow_graph_depth(spec: rs.ResNetSpec) -> None:
    """Keras walks the functional graph recursively (one Python frame per layer), so the
    deepest variants (resnest269, resnet1202) exceed the default limit of 1000 frames. Only
    ever raised, never lowered."""
    needed = 4 * len(rs.plan(spec).all_layers()) + 1000  # about three Keras layers per plan layer
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def _outputs(spec: rs.ResNetSpec, x):
    """The model's output tensor(s), and the tap name -> layer name map (see tap_layer_names)."""
    p = rs.plan(spec)
    x = walk(p.stem, x)
    made = {"stem": output_name(p.stem[-1])}
    features = []
    for stage_name, stage in zip(p.stage_names, p.stages):
        for b in stage:
            x = block(b, x)
            made[b.name] = output_name(b)
        made[stage_name] = made[stage[-1].name]
        features.append(x)
    features[-1] = walk(p.final, features[-1])
    taps = OrderedDict((name, made.get(name)) for name in p.taps())
    if spec.features_only:
        return features, taps
    last = (p.final + p.head)[-1:]
    taps["output"] = output_name(last[0]) if last else made[p.stage_names[-1]]
    return walk(p.head, features[-1]), taps
