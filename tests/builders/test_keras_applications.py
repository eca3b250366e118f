"""Our keras.applications variants against keras.applications itself (built offline, weights=None).

Our PyTorch model gets randomised weights and BatchNorm statistics (parity.testing), our Keras
model the same by porting, and keras.applications' model the same tensors through
resnet_spec.keras_applications_names; then all three run the same images. keras.applications is
built with classifier_activation=None so that all three return logits.
"""

import numpy as np
import pytest
import torch

import resnet_spec as rs
from conftest import ported
from parity.core.metrics import relative_error
from parity.core.report import EVAL_TOLERANCE as BOUND

KERAS_APPLICATIONS = {
    "keras_resnet50": "ResNet50", "keras_resnet101": "ResNet101", "keras_resnet152": "ResNet152",
    "keras_resnet50v2": "ResNet50V2", "keras_resnet101v2": "ResNet101V2", "keras_resnet152v2": "ResNet152V2",
}
pytestmark = pytest.mark.usefixtures("free_keras")  # conftest

BACKBONE_SIZES = [(75, 67), (64, 80), (61, 61)]  # odd non-square, even non-square, odd square


def application(name: str, include_top: bool):
    import keras

    build = getattr(keras.applications, KERAS_APPLICATIONS[name])
    if include_top:
        return build(weights=None, classifier_activation=None)
    return build(weights=None, include_top=False, input_shape=(None, None, 3))


def copy_into_application(ours, theirs) -> int:
    """Every weight of our Keras model into keras.applications' model, layer by layer through
    the name map; strict both ways. Returns the number of arrays copied."""
    names = rs.keras_applications_names(ours.spec)
    with_weights = {layer.name for layer in theirs.layers if layer.weights}
    assert set(names.values()) == with_weights  # the map names every weighted layer, and only those
    copied = 0
    for plan_name, keras_name in names.items():
        values = ours.get_layer(plan_name).get_weights()
        target = theirs.get_layer(keras_name)
        assert [w.shape for w in target.get_weights()] == [v.shape for v in values], keras_name
        target.set_weights(values)
        copied += len(values)
    return copied


def run(model, x):
    """One eager call: tracing a graph for predict() costs more than the call itself here."""
    import keras

    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    return {size: rng.standard_normal((2, *size, 3)).astype("float32") for size in [(224, 224), *BACKBONE_SIZES]}


@pytest.mark.parametrize("name", list(KERAS_APPLICATIONS))
def test_with_the_head_at_224_all_three_agree(name, images):
    torch_model, keras_model = ported(name, seed=3)
    theirs = application(name, include_top=True)
    counts = rs.count_parameters(torch_model.spec)
    assert theirs.count_params() == keras_model.count_params() == counts.params + counts.buffers
    assert copy_into_application(keras_model, theirs) == len(theirs.weights)
    x = images[(224, 224)]
    reference = run(theirs, x)
    ours_keras = run(keras_model, x)
    with torch.no_grad():
        ours_torch = torch_model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    assert np.abs(reference).max() > 1e-2  # the logits are not vanishingly small
    assert relative_error(reference, ours_keras) <= BOUND
    assert relative_error(reference, ours_torch) <= BOUND
    assert (reference.argmax(1) == ours_torch.argmax(1)).all()
    del theirs


@pytest.mark.parametrize("name", list(KERAS_APPLICATIONS))
def test_backbones_agree_at_odd_even_and_non_square_sizes(name, images):
    torch_model, keras_model = ported(name, seed=5, include_top=False, pooling=None)
    theirs = application(name, include_top=False)
    assert copy_into_application(keras_model, theirs) == len(theirs.weights)
    for size in BACKBONE_SIZES:
        x = images[size]
        reference = run(theirs, x)
        ours_keras = run(keras_model, x)
        with torch.no_grad():
            ours_torch = torch_model(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        assert reference.shape == ours_keras.shape == ours_torch.shape, size
        assert relative_error(reference, ours_keras) <= BOUND, size
        assert relative_error(reference, ours_torch) <= BOUND, size
    del theirs


def test_a_wrong_map_would_be_caught(images):
    """The comparison is sharp enough to see one layer's weights under a neighbour's name."""
    torch_model, keras_model = ported("keras_resnet50", seed=3)
    theirs = application("keras_resnet50", include_top=True)
    copy_into_application(keras_model, theirs)
    a, b = theirs.get_layer("conv3_block2_1_bn"), theirs.get_layer("conv3_block3_1_bn")
    wa, wb = a.get_weights(), b.get_weights()
    a.set_weights(wb)
    b.set_weights(wa)
    x = images[(224, 224)]
    assert relative_error(run(theirs, x), run(keras_model, x)) > 100 * BOUND
    del theirs
