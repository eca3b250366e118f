"""An inference fast path: BatchNorm folded into the convolution before it."""

from __future__ import annotations

import keras
import numpy as np

import resnet_spec as rs

from .layers import PACKAGE, keras_name


@keras.saving.register_keras_serializable(package=PACKAGE)
class FoldedBatchNorm(keras.layers.Layer):
    """Where a BatchNorm was folded into the conv before it: passes its input through. Kept so
    the graph keeps its names; it costs nothing."""

    def call(self, inputs, training=None, mask=None):
        return inputs


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of `model` (a resnet_tf ResNet) for inference only, in which every BatchNorm that
    directly follows a conv (resnet_spec.foldable_pairs) is folded into that conv:

        w' = w * gamma / sqrt(var + eps),   b' = (b - mean) * gamma / sqrt(var + eps) + beta

    computed in float64. The copy is a plain functional keras.Model with the same layer names,
    named `<model>_folded`.
    """
    pairs = {keras_name(conv.name): keras_name(bn.name) for conv, bn in rs.foldable_pairs(model.plan)}
    folded_norms = set(pairs.values())

    def clone(layer):
        if layer.name in folded_norms:
            return FoldedBatchNorm(name=layer.name)
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    # Its own name, so that the two are told apart in graphs and reports. (An older
    # note here blamed a shared name for a crash in TensorFlow's oneDNN rewrite; the cause was a
    # Pad feeding a fused residual sum, see ZeroPadShortcut.)
    folded.name = f"{model.name}_folded"
    for layer in folded.layers:
        source = model.get_layer(layer.name)
        if layer.name in pairs:
            layer.set_weights(_folded_conv(source, model.get_layer(pairs[layer.name])))
        elif layer.weights:
            layer.set_weights(source.get_weights())
    return folded


def _folded_conv(conv, bn) -> list[np.ndarray]:
    kernel = np.asarray(conv.kernel.numpy(), np.float64)  # (kh, kw, in / groups, out)
    bias = np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    gamma, beta, mean, var = (np.asarray(v.numpy(), np.float64) for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    scale = gamma / np.sqrt(var + bn.epsilon)
    dtype = conv.kernel.dtype
    return [(kernel * scale).astype(dtype), ((bias - mean) * scale + beta).astype(dtype)]
