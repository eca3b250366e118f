"""parity.porting: strict weight maps between resnet_torch and resnet_tf, both ways."""


import numpy as np
import pytest
import torch

import keras  # noqa: E402  (after torch, see conftest)

import resnet_spec as rs  # noqa: E402
import resnet_tf  # noqa: E402
import resnet_torch  # noqa: E402
from parity.core.porting import (  # noqa: E402
    NUM_BATCHES_TRACKED,
    WeightMismatchError,
    keras_to_state_dict,
    keras_to_torch,
    state_dict_to_keras,
    torch_to_keras,
)
from parity.testing import randomize_torch  # noqa: E402

# One per family, shrunk where the family allows it, so every layer kind and shortcut is covered.
ROUND_TRIP = [
    rs.get("resnet18"),
    rs.get("resnext50_32x4d", layers=(1, 1, 1, 1)),
    rs.get("resnest50", layers=(1, 2, 1, 1), groups=2),  # conv biases, grouped fc1/fc2
    rs.get("resnet18d"),
    rs.get("preact_resnet50", layers=(1, 1, 1, 1)),
    rs.get("resnet20"),
]


pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


def random_torch(spec, seed=0):
    return randomize_torch(resnet_torch.create_model(spec), seed).eval()


@pytest.mark.parametrize("spec", ROUND_TRIP, ids=lambda s: s.name)
def test_torch_keras_torch_round_trip_is_bit_identical(spec):
    source = random_torch(spec, seed=11)
    back = keras_to_torch(torch_to_keras(source))
    assert isinstance(back, resnet_torch.ResNet) and back.spec == spec
    expected, got = source.state_dict(), back.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert torch.equal(got[key], value), key


def test_kernels_land_in_keras_layout():
    source = random_torch(rs.get("resnext50_32x4d", layers=(1, 1, 1, 1)), seed=12)
    keras_model = torch_to_keras(source)
    sd = source.state_dict()
    conv = keras_model.get_layer("layer1.0.conv2").kernel.numpy()  # grouped, 32 groups
    w = sd["layer1.0.conv2.weight"].numpy()  # (out, in/groups, kh, kw)
    assert conv.shape == (3, 3, w.shape[1], w.shape[0])
    assert conv[2, 0, 3, 17] == w[17, 3, 2, 0]
    fc = keras_model.get_layer("fc").kernel.numpy()
    assert fc[5, 9] == sd["fc.weight"].numpy()[9, 5]
    bn = keras_model.get_layer("layer1.0.bn2")
    for attr, key in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var")):
        np.testing.assert_array_equal(getattr(bn, attr).numpy(), sd[f"layer1.0.bn2.{key}"].numpy())


def test_state_dict_of_numpy_arrays_ports_too():
    spec = rs.get("resnet20")
    source = random_torch(spec, seed=13)
    arrays = {k: v.numpy() for k, v in source.state_dict().items() if not k.endswith(rs.BN_COUNTER)}
    keras_model = state_dict_to_keras(arrays, resnet_tf.create_model(spec))
    round_trip = keras_to_state_dict(keras_model)
    for key, value in arrays.items():
        np.testing.assert_array_equal(round_trip[key].numpy(), value)


def test_num_batches_tracked_is_dropped_then_written_as_documented():
    spec = rs.get("resnet20")
    source = random_torch(spec, seed=14)
    for module in source.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.num_batches_tracked.fill_(123)
    back = keras_to_torch(torch_to_keras(source))
    counters = {k: v for k, v in back.state_dict().items() if k.endswith(rs.BN_COUNTER)}
    assert len(counters) == sum(isinstance(layer, rs.BatchNorm) for layer in rs.plan(spec).weighted_layers())
    assert all(int(v) == NUM_BATCHES_TRACKED == 0 for v in counters.values())


def test_keras_to_torch_after_keras_file_reload(tmp_path):
    spec = rs.get("resnest50", layers=(1, 1, 1, 1), num_classes=4)
    source = random_torch(spec, seed=15)
    path = tmp_path / "m.keras"
    torch_to_keras(source).save(path)
    back = keras_to_torch(keras.saving.load_model(path))
    assert back.spec == spec
    for key, value in source.state_dict().items():
        if not key.endswith(rs.BN_COUNTER):
            assert torch.equal(back.state_dict()[key], value), key


def test_porting_into_given_models():
    spec = rs.get("resnet20")
    source = random_torch(spec, seed=16)
    keras_model = resnet_tf.create_model(spec)
    assert torch_to_keras(source, keras_model) is keras_model
    target = resnet_torch.create_model(spec)
    assert keras_to_torch(keras_model, target) is target
    assert torch.equal(target.state_dict()["layer3.2.conv2.weight"], source.state_dict()["layer3.2.conv2.weight"])


def _raises_mismatch(state_dict, keras_model):
    with pytest.raises(WeightMismatchError) as info:
        state_dict_to_keras(state_dict, keras_model)
    return info.value


def test_mismatched_state_dict_names_what_is_wrong():
    spec = rs.get("resnet20")
    keras_model = resnet_tf.create_model(spec)
    good = random_torch(spec, seed=17).state_dict()

    missing = {k: v for k, v in good.items() if k != "layer2.1.bn1.running_var"}
    err = _raises_mismatch(missing, keras_model)
    assert err.missing == ["layer2.1.bn1.running_var"] and not err.unexpected and not err.shape_mismatches
    assert "layer2.1.bn1.running_var" in str(err)

    unexpected = {**good, "layer9.0.conv1.weight": torch.zeros(1)}
    err = _raises_mismatch(unexpected, keras_model)
    assert err.unexpected == ["layer9.0.conv1.weight"] and not err.missing

    wrong = dict(good)
    wrong["fc.weight"] = torch.zeros(11, 64)
    err = _raises_mismatch(wrong, keras_model)
    assert err.shape_mismatches == [("fc.weight", (11, 64), (10, 64))]
    assert "(11, 64)" in str(err) and "(10, 64)" in str(err)
    assert isinstance(err, ValueError)


def test_mismatch_leaves_the_keras_model_untouched():
    spec = rs.get("resnet20")
    keras_model = resnet_tf.create_model(spec)
    before = [v.numpy().copy() for v in keras_model.weights]
    bad = dict(random_torch(spec, seed=18).state_dict())
    bad["conv1.weight"] = torch.zeros(16, 3, 5, 5)
    _raises_mismatch(bad, keras_model)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, keras_model.weights))


def test_torch_model_of_another_variant_is_refused():
    source = random_torch(rs.get("resnet20"), seed=19)
    with pytest.raises(WeightMismatchError) as info:
        torch_to_keras(source, resnet_tf.create_model("resnet32"))
    assert any(k.startswith("layer1.3.") for k in info.value.missing)
    with pytest.raises(WeightMismatchError) as info:
        keras_to_torch(resnet_tf.create_model("resnet20", num_classes=5), resnet_torch.create_model("resnet20"))
    assert info.value.shape_mismatches[0][0] == "fc.bias"


def test_a_keras_model_without_a_spec_is_refused():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="ResNetSpec"):
        keras_to_state_dict(plain)
