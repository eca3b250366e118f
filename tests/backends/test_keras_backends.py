"""resnet_tf and parity on the Keras backend this process runs (KERAS_BACKEND): `make test` runs
this module once on each of tensorflow, jax and torch, every backend in one process.

The reference is resnet_torch with randomised weights; a .keras file saved here is loaded on the
other two backends in fresh processes.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import keras  # noqa: E402  (after torch, see conftest)

import parity  # noqa: E402
import resnet_spec as rs  # noqa: E402
import resnet_tf  # noqa: E402
import resnet_torch  # noqa: E402
from parity.core.metrics import relative_error  # noqa: E402
from parity.core.precision import PrecisionUnavailable, probe  # noqa: E402
from parity.core.testing import randomize_torch  # noqa: E402
from conftest import ported, size_for  # noqa: E402

BACKEND = keras.backend.backend()
FAMILY_VARIANTS = [rs.names(family)[0] for family in rs.FAMILIES]


pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


def images(spec, size=None, batch=2, seed=0):
    size = size or size_for(spec, (33, 31), (67, 61))
    return np.random.default_rng(seed).standard_normal((batch, spec.in_channels, *size)).astype(np.float32)


def test_the_backend_is_the_one_asked_for():
    assert BACKEND == os.environ.get("KERAS_BACKEND", BACKEND)
    model = resnet_tf.create_model("resnet20")
    # Names are the plan's, through the one name function (PyTorch refuses dots).
    assert model.get_layer(resnet_tf.keras_name("layer1.0.conv1")).name == rs.keras_name("layer1.0.conv1", BACKEND)
    assert ("." in model.get_layer(resnet_tf.keras_name("layer1.0.conv1")).name) == (BACKEND != "torch")


@pytest.mark.parametrize("name", FAMILY_VARIANTS)
def test_eval_parity_and_bit_identical_round_trip(name):
    torch_model, keras_model = ported(name, seed=1)
    spec = torch_model.spec
    for size in size_for(spec, [(32, 32), (31, 40)], [(64, 64), (61, 86)]):
        report = parity.compare(torch_model, keras_model, images(spec, size))
        assert report.ok, report.table()
        assert report.environment["backend"] == BACKEND
    back = parity.keras_to_torch(keras_model).state_dict()
    for key, tensor in torch_model.state_dict().items():
        if not key.endswith(rs.BN_COUNTER):
            assert torch.equal(back[key], tensor), key


# The smallest network of each family for the train step; wide_resnet50_2 (69M parameters) one
# block a stage deep (22M), as the others: its whole step holds some 4 GB, which beside the main
# test process nears this machine's memory. The whole of it is checked on TensorFlow (tests/core).
TRAIN_CASES = [(name, {"layers": (1, 1, 1, 1)} if name == "wide_resnet50_2" else {}) for name in FAMILY_VARIANTS]


@pytest.mark.parametrize("name, options", TRAIN_CASES, ids=[name for name, _ in TRAIN_CASES])
def test_train_mode_step_parity(name, options):
    # Batch statistics, gradients by this backend's own autodiff, an SGD step, running statistics:
    # float32 (the default) against the envelope around float64.
    torch_model, keras_model = ported(name, seed=4, **options)
    report = parity.compare(torch_model, keras_model, images(torch_model.spec, batch=3), mode="train")
    assert (report.precision, report.reference) == ("float32", "float64")
    assert sum(r.kind == "gradient" for r in report.rows) == len(list(torch_model.parameters()))
    assert report.ok, report.table()


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_is_within_the_envelope(precision):
    # PyTorch's CPU autocast against a Keras model built under this backend's mixed policy.
    try:
        probe(precision)
    except PrecisionUnavailable as e:
        pytest.skip(str(e))
    torch_model, keras_model = ported("resnet20", seed=5, policy=f"mixed_{precision}")
    report = parity.compare(torch_model, keras_model, images(torch_model.spec), precision=precision)
    assert report.ok and report.precision == precision, report.table()


def test_features_only_and_folding():
    torch_model, keras_model = ported("resnet18d", seed=2, features_only=True, output_stride=16)
    report = parity.compare(torch_model, keras_model, images(torch_model.spec, (61, 86)))
    assert report.ok and [r.name for r in report.rows if r.kind == "stage"] == ["layer1", "layer2", "layer3", "layer4"]

    torch_model, keras_model = ported("resnet50", seed=3)
    folded = resnet_tf.fold_batchnorm(keras_model)
    x = images(torch_model.spec).transpose(0, 2, 3, 1)
    with torch.no_grad():
        reference = torch_model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert relative_error(reference, keras.ops.convert_to_numpy(folded(x, training=False))) <= 1e-5
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers) == 0


def test_fit_reduces_the_loss():  # moved here from builders/test_tf_models.py, to run on every backend
    keras.utils.set_random_seed(0)
    model = resnet_tf.resnet20(num_classes=3)
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, 48)
    x = rng.standard_normal((48, 16, 16, 3)).astype(np.float32) + labels[:, None, None, None]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = model.fit(x, labels, batch_size=16, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses


def test_convert_verifies_on_this_backend(tmp_path):
    torch_model = randomize_torch(resnet_torch.create_model("resnest50", num_classes=7), seed=5)
    torch.save(torch_model.state_dict(), tmp_path / "model.pth")
    result = parity.convert_file(tmp_path / "model.pth", tmp_path / "model.keras")
    assert result.spec.name == "resnest50" and result.report.ok, result.report.table()
    assert result.report.environment["backend"] == BACKEND
    back = parity.convert_file(tmp_path / "model.keras", tmp_path / "back.pth")
    assert back.report.ok
    returned = torch.load(tmp_path / "back.pth", weights_only=True)
    assert all(torch.equal(returned[k], v) for k, v in torch_model.state_dict().items())
    parity.testing.assert_parity(torch_model.eval(), keras.saving.load_model(tmp_path / "model.keras"),
                                 images(torch_model.spec))


LOAD_ELSEWHERE = """
import json, sys
import numpy as np
import keras, resnet_tf
model = keras.saving.load_model(sys.argv[1])
data = np.load(sys.argv[2])
same = all(np.array_equal(keras.ops.convert_to_numpy(v), data[f"w{i}"]) for i, v in enumerate(model.weights))
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(data["x"], training=False)))
print(json.dumps({"backend": keras.backend.backend(), "same": same, "count": len(model.weights)}))
"""


def test_a_keras_file_saved_here_loads_on_every_other_backend(tmp_path):
    _, keras_model = ported("resnest50", seed=6)
    path = tmp_path / f"saved-on-{BACKEND}.keras"
    keras_model.save(path)
    x = images(keras_model.spec).transpose(0, 2, 3, 1)
    y = keras.ops.convert_to_numpy(keras_model(x, training=False))
    np.savez(tmp_path / "data.npz", x=x,
             **{f"w{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(keras_model.weights)})
    for other in set(rs.KERAS_BACKENDS) - {BACKEND}:  # this one: test_convert_verifies_on_this_backend
        env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = tmp_path / f"out-{other}.npy"
        run = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, str(path), str(tmp_path / "data.npz"), str(out)],
                             capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        got = json.loads(run.stdout.splitlines()[-1])
        assert got["backend"] == other
        assert got["same"] and got["count"] == len(keras_model.weights), f"weights changed on {other}"
        err = relative_error(y, np.load(out))
        assert err <= 1e-5, f"saved on {BACKEND}, run on {other}: {err:.2e}"
