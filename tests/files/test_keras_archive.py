"""parity.keras_archive writes resnet_tf's Keras files without Keras. The reference is Keras
itself: the file Keras writes for the same model holding the same weights, and Keras loading
ours."""

import io
import json
import zipfile

import h5py
import numpy as np
import pytest
import torch

import keras  # noqa: E402  (after torch, see conftest)

import resnet_spec as rs  # noqa: E402
import resnet_tf  # noqa: E402
import resnet_torch  # noqa: E402
from conftest import assert_imports_none_of  # noqa: E402
from parity.core import porting  # noqa: E402
from parity.files import keras_archive, keras_io  # noqa: E402
from parity.testing import randomize_torch  # noqa: E402

# One network per family (shortened where deep: depth changes only how many groups there are)
# and the head options, which change the Dense layer and the config.
SPECS = [
    rs.get("resnet18"),
    rs.get("resnext50_32x4d", layers=(1, 2, 1, 1)),
    rs.get("wide_resnet50_2", layers=(1, 1, 1, 1), num_classes=7),
    rs.get("resnest50", layers=(1, 1, 2, 1)),
    rs.get("resnet50d", layers=(2, 1, 1, 1), include_top=False),
    rs.get("preact_resnet18", features_only=True),
    rs.get("resnet20"),
    rs.get("resnet20", num_classes=3, head=(("linear", 16), ("relu",), ("dropout", 0.25))),  # a fine-tuned head
]


pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


def random_state_dict(spec, seed):
    return randomize_torch(resnet_torch.create_model(spec), seed=seed).state_dict()


def sources(spec, seed=3):
    """A random state_dict, and the Keras model holding it (ported by parity.porting)."""
    state_dict = random_state_dict(spec, seed)
    return state_dict, porting.state_dict_to_keras(state_dict, resnet_tf.ResNet(spec))


def datasets(h5: h5py.File) -> dict:
    """path -> (the attributes of the group holding it, its array), for every dataset."""
    out = {}
    h5.visititems(lambda name, obj: out.__setitem__(name, (dict(obj.parent.attrs), obj[()]))
                  if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_datasets(ours: h5py.File, keras_file: h5py.File):
    got, want = datasets(ours), datasets(keras_file)
    assert sorted(got) == sorted(want)
    for path, (attrs, array) in want.items():
        assert got[path][0] == attrs, path
        assert got[path][1].dtype == array.dtype and got[path][1].shape == array.shape, path
        np.testing.assert_array_equal(got[path][1], array, err_msg=path)


def record(spec):
    return keras_io.metadata(spec, {}, "test.pth")


@pytest.mark.parametrize("spec", SPECS, ids=[s.name + ("-head" if s.head else "") for s in SPECS])
def test_keras_archive_is_the_file_keras_writes(spec, tmp_path):
    state_dict, keras_model = sources(spec)
    keras_model.save(tmp_path / "keras.keras")
    keras_archive.write(state_dict, spec, tmp_path / "ours.keras", record(spec))

    with zipfile.ZipFile(tmp_path / "keras.keras") as theirs, zipfile.ZipFile(tmp_path / "ours.keras") as ours:
        assert ours.namelist() == theirs.namelist() + [keras_io.METADATA_MEMBER]
        assert {i.compress_type for i in ours.infolist()} == {zipfile.ZIP_STORED}
        assert json.loads(ours.read("config.json")) == json.loads(theirs.read("config.json"))
        ours_meta, their_meta = (json.loads(z.read("metadata.json")) for z in (ours, theirs))
        assert ours_meta.keys() == their_meta.keys() and ours_meta["keras_version"] == keras.__version__
        with h5py.File(io.BytesIO(ours.read("model.weights.h5"))) as a, \
                h5py.File(io.BytesIO(theirs.read("model.weights.h5"))) as b:
            assert_same_datasets(a, b)

    loaded, kept = keras_io.load(tmp_path / "ours.keras")  # safe mode, and a partial fit is an error
    assert loaded.spec == spec and kept == record(spec)
    x = np.random.default_rng(0).standard_normal((2, 37, 45, spec.in_channels)).astype(np.float32)
    for got, want in zip(keras.tree.flatten(loaded(x, training=False)), keras.tree.flatten(keras_model(x, training=False))):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("spec", [SPECS[3], SPECS[6]], ids=["resnest", "cifar"])
def test_weights_h5_is_the_file_keras_writes(spec, tmp_path):
    state_dict, keras_model = sources(spec, seed=4)
    keras_model.save_weights(tmp_path / "keras.weights.h5")
    keras_archive.write(state_dict, spec, tmp_path / "ours.weights.h5", record(spec))
    with h5py.File(tmp_path / "ours.weights.h5") as a, h5py.File(tmp_path / "keras.weights.h5") as b:
        assert_same_datasets(a, b)
        assert json.loads(a.attrs[keras_io.METADATA_ATTR]) == record(spec)
    loaded, _ = keras_io.load(tmp_path / "ours.weights.h5")
    for ours, theirs in zip(loaded.weights, keras_model.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_half_precision_weights_are_written_as_float32(tmp_path):
    spec = rs.get("resnet20")
    state_dict = random_state_dict(spec, seed=3)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}
    keras_archive.write(half, spec, tmp_path / "half.weights.h5", record(spec))
    loaded, _ = keras_io.load(tmp_path / "half.weights.h5")
    expected = porting.keras_to_state_dict(loaded)
    for key, value in half.items():
        if value.is_floating_point():
            assert torch.equal(expected[key], value.float()), key


def test_a_state_dict_that_does_not_fit_writes_nothing(tmp_path):
    spec = rs.get("resnet20")
    state_dict = random_state_dict(spec, seed=3)
    del state_dict["layer2.0.bn1.running_var"]
    state_dict["layer1.0.conv1.weight"] = state_dict["layer1.0.conv1.weight"][:8]
    with pytest.raises(porting.WeightMismatchError, match="missing 1: layer2.0.bn1.running_var") as err:
        keras_archive.write(state_dict, spec, tmp_path / "bad.keras", record(spec))
    assert "layer1.0.conv1.weight has shape (8, 16, 3, 3), expected (16, 16, 3, 3)" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_converting_to_keras_without_verification_loads_no_tensorflow(tmp_path):
    src = tmp_path / "resnet20.pth"
    torch.save(randomize_torch(resnet_torch.resnet20(), seed=5).state_dict(), src)
    code = f"import parity\nparity.convert_file({str(src)!r}, {str(tmp_path / 'out.keras')!r}, verify=False)"
    assert_imports_none_of(code, ("tensorflow", "keras"))
    loaded, _ = keras_io.load(tmp_path / "out.keras")
    assert loaded.spec == rs.get("resnet20")
