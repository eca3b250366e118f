"""The BatchNorm-folded inference path of both frameworks against the unfolded models."""

import numpy as np
import pytest
import torch

import keras  # noqa: E402  (after torch, see conftest)
import tensorflow as tf  # noqa: E402

import resnet_spec as rs  # noqa: E402
import resnet_tf  # noqa: E402
import resnet_torch  # noqa: E402
from parity.testing import randomize_torch  # noqa: E402
from parity.core.metrics import relative_error  # noqa: E402
from conftest import ported, size_for  # noqa: E402

FAMILY_VARIANTS = [rs.names(family)[0] for family in rs.FAMILIES]


def within_contract(ours, reference):
    return relative_error(reference, ours) <= 1e-5


@pytest.mark.parametrize("name", FAMILY_VARIANTS)
def test_folded_models_compute_what_the_unfolded_ones_do(name):
    spec = rs.get(name)
    size = size_for(spec, (33, 31), (67, 61))
    model, keras_model = ported(name, seed=3)
    folded = resnet_torch.fold_batchnorm(model)
    x = np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
        assert within_contract(folded(torch.from_numpy(x)).numpy(), reference)

    keras_folded = resnet_tf.fold_batchnorm(keras_model)
    assert keras_folded.name == f"{keras_model.name}_folded"  # see resnet_tf.fold_batchnorm
    nhwc = x.transpose(0, 2, 3, 1)
    assert within_contract(np.asarray(keras_folded(nhwc, training=False)), reference)
    # And as inference runs: in a tf.function (rewritten by TensorFlow's graph optimiser, which
    # fuses conv, bias and ReLU) and compiled by XLA.
    for m in (keras_model, keras_folded):
        for jit in (False, True):
            fn = tf.function(lambda a, m=m: m(a, training=False), jit_compile=jit)
            assert within_contract(np.asarray(fn(tf.constant(nhwc))), reference), (m.name, jit)

    # Only the BatchNorms that no conv feeds directly are left: none in post-activation
    # networks; the block-input ones and the final one in pre-activation networks.
    left = {n for n, m in folded.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    expected = {f"{b.name}.bn1" for b in model.plan.blocks} | {"bn_final"} if spec.preact else set()
    assert left == expected
    assert {layer.name for layer in keras_folded.layers if isinstance(layer, keras.layers.BatchNormalization)} == expected


def test_folding_leaves_the_source_model_alone():
    model = randomize_torch(resnet_torch.resnet18(), seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    resnet_torch.fold_batchnorm(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_no_pad_feeds_a_residual_sum_in_tensorflow():
    """TensorFlow's oneDNN rewrite fuses a biased conv with the residual sum after it, then may
    merge the shortcut's Pad into that conv as if it were the conv's own (a segmentation fault,
    in about half the runs of folded resnet20 in a tf.function). So no sum may read a Pad: the
    CIFAR shortcut concatenates its zero channels."""
    _, keras_model = ported("resnet20", seed=5)
    folded = resnet_tf.fold_batchnorm(keras_model)
    graph = tf.function(lambda a: folded(a, training=False)).get_concrete_function(
        tf.TensorSpec((1, 32, 32, 3), tf.float32)).graph
    sums = [op for op in graph.get_operations() if op.type in ("Add", "AddV2")]
    assert len(sums) >= 9  # one per block of resnet20, at least
    assert not [(op.name, i.op.name) for op in sums for i in op.inputs if i.op.type in ("Pad", "PadV2")]
