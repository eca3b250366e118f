"""keras.applications' ResNet files, both ways. The references are keras.applications' own models,
built offline (weights=None) with every weight and BatchNorm statistic drawn at random, saved by
Keras itself as .keras, legacy .h5 and .weights.h5, and loaded by Keras itself (load_weights)
from the files we write."""

import json
import pickle
import shutil
import zipfile

import h5py
import numpy as np
import pytest
import torch

import keras  # noqa: E402  (after torch, see conftest)

import resnet_spec as rs  # noqa: E402
from conftest import CLI_SCRIPT  # noqa: E402
from parity.core import metrics  # noqa: E402
from parity.core.report import EVAL_TOLERANCE  # noqa: E402
from parity.files import atomic, errors, keras_applications, loading  # noqa: E402
from parity.files.convert import convert_file  # noqa: E402
from parity.files.identify import ArchitectureError  # noqa: E402
from parity.testing import random_images, randomize_torch  # noqa: E402

KINDS = (".keras", ".h5", ".weights.h5")
# keras.applications fixes the input size of a model with its classifier (224); a backbone takes
# any, here an odd and non-square one.
SIZES = {"v1": (224, 224), "v2": (61, 86)}


def randomize(model, seed: int):
    """Every variable drawn: kernels N(0, 1/fan_in), biases and BatchNorm shifts and means
    N(0, 0.2), scales and variances U(0.5, 1.5). Default BatchNorm would hide a swapped vector."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for var in layer.weights:
            leaf, shape = var.path.rsplit("/", 1)[-1], tuple(var.shape)
            if leaf == "kernel":
                value = rng.normal(0, np.sqrt(1 / np.prod(shape[:-1])), shape)
            elif leaf in ("gamma", "moving_variance"):
                value = rng.uniform(0.5, 1.5, shape)
            else:
                value = rng.normal(0, 0.2, shape)
            var.assign(value.astype("float32"))
    return model


def all_arrays(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (the randomised keras.applications model, {kind: the file Keras saved}): ResNet50
    fine-tuned to 10 classes, and a ResNet50V2 backbone (include_top=False). The softmax that
    keras.applications puts after its classifier by default holds no weights, and our models
    give logits: the classifier's model here gives logits too, so outputs compare as they are."""
    out = {}
    for name, build, options in (
        ("v1", keras.applications.ResNet50, {"classes": 10, "classifier_activation": None}),  # logits, as ours
        ("v2", keras.applications.ResNet50V2, {"include_top": False}),
    ):
        model = randomize(build(weights=None, **options), seed=len(out))
        folder = tmp_path_factory.mktemp(name)
        files = {kind: folder / f"model{kind}" for kind in KINDS}
        model.save(files[".keras"])
        model.save(files[".h5"])
        model.save_weights(files[".weights.h5"])
        out[name] = model, files
    yield out
    keras.backend.clear_session(free_memory=False)


def keras_layout_arrays(path) -> dict[str, list[np.ndarray]]:
    return keras_applications.read_layers(path)[0]


def assert_same_arrays(got: dict, want: dict):
    assert sorted(got) == sorted(want)
    for name, arrays in want.items():
        assert len(got[name]) == len(arrays), name
        for a, b in zip(got[name], arrays):
            assert a.dtype == b.dtype and a.shape == b.shape, name
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_each_file_kind_converts_to_pytorch_and_back_bit_for_bit(saved, kind, tmp_path):
    model, files = saved["v1"]
    pth = tmp_path / "model.pth"
    verify = kind == ".keras"  # the comparison is the same for every kind: once is enough
    result = convert_file(files[kind], pth, verify=verify)
    assert result.spec.name == "keras_resnet50" and result.spec.num_classes == 10 and result.inferred
    if verify:
        assert result.report.ok, result.report.table()
    state_dict = torch.load(pth, weights_only=True)
    assert state_dict["fc.weight"].shape == (10, 2048)
    np.testing.assert_array_equal(state_dict["conv1.weight"].numpy(),
                                  model.get_layer("conv1_conv").kernel.numpy().transpose(3, 2, 0, 1))

    back = tmp_path / "back.weights.h5"
    convert_file(pth, back, layout="keras_applications", verify=False)
    assert_same_arrays(keras_layout_arrays(back), all_arrays(model))


def test_keras_applications_file_to_our_keras_and_safetensors(saved, tmp_path):
    model, files = saved["v1"]
    ours = tmp_path / "ours.keras"
    result = convert_file(files[".h5"], ours)  # verified: read back by Keras as a resnet_tf model
    assert result.report.ok, result.report.table()
    assert not keras_applications.holds(ours)  # our own .keras: loaded by Keras as before
    st = tmp_path / "model.safetensors"
    convert_file(ours, st, verify=False)
    pth = tmp_path / "model.pth"
    convert_file(files[".weights.h5"], pth, verify=False)
    from safetensors.torch import load_file

    via_ours, direct = load_file(st), torch.load(pth, weights_only=True)
    assert sorted(via_ours) == sorted(direct)  # safetensors keeps its keys sorted
    for k in direct:
        assert torch.equal(via_ours[k], direct[k]), k


def test_backbone_is_identified_and_round_trips(saved, tmp_path):
    model, files = saved["v2"]
    state_dict, spec, notes = keras_applications.read(files[".weights.h5"])
    assert spec.name == "keras_resnet50v2" and not spec.include_top and spec.pooling is None  # keras.applications default
    assert rs.CLASSIFIER + ".weight" not in state_dict and "bn_final.running_var" in state_dict
    pth = tmp_path / "backbone.pth"
    convert_file(files[".keras"], pth, verify=False)
    back = tmp_path / "back.weights.h5"
    convert_file(pth, back, layout="keras_applications")  # verified
    assert_same_arrays(keras_layout_arrays(back), all_arrays(model))


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_our_file_loads_into_keras_applications_own_model(saved, which, tmp_path):
    """PyTorch -> a .weights.h5 that keras.applications' load_weights reads, giving the outputs
    of the model the weights came from, and of our PyTorch model within the parity bound."""
    model, files = saved[which]
    pth = tmp_path / "model.pth"
    convert_file(files[".weights.h5"], pth, verify=False)
    out = tmp_path / "for_keras.weights.h5"
    convert_file(pth, out, layout="keras_applications", verify=False)

    fresh = keras.models.clone_model(model)  # keras.applications' architecture, new weights
    fresh.load_weights(out)
    x = random_images(rs.get("keras_resnet50"), 2, SIZES[which], seed=5)  # NCHW
    nhwc = np.transpose(x, (0, 2, 3, 1))
    want = np.asarray(model(nhwc, training=False))
    np.testing.assert_array_equal(np.asarray(fresh(nhwc, training=False)), want)

    spec = keras_applications.read(files[".weights.h5"])[1]  # a backbone's pooling: keras.applications' (None)
    torch_model = loading.torch_model(spec, torch.load(pth, weights_only=True))
    with torch.no_grad():
        y = torch_model(torch.from_numpy(x)).numpy()
    y = y if y.ndim == 2 else np.transpose(y, (0, 2, 3, 1))
    error = metrics.relative_error(want, y)
    print(f"{which}: PyTorch vs keras.applications, relative {error:.2e}")
    assert error <= EVAL_TOLERANCE


@pytest.mark.parametrize("name", ["keras_resnet101", "keras_resnet152", "keras_resnet101v2", "keras_resnet152v2"])
def test_deeper_variants_have_keras_applications_names_order_and_shapes(name, free_keras):
    """What identification and the written layout rest on, for the deeper networks: the layer
    names, their order per class and every variable's shape, against keras.applications."""
    build = {"keras_resnet101": keras.applications.ResNet101, "keras_resnet152": keras.applications.ResNet152,
             "keras_resnet101v2": keras.applications.ResNet101V2,
             "keras_resnet152v2": keras.applications.ResNet152V2}[name]
    theirs = build(weights=None, classes=7)
    spec = rs.get(name, num_classes=7)
    weighted = [layer for layer in theirs.layers if layer.weights]
    assert [n for _, n, _ in keras_applications.weight_groups(spec)] == [layer.name for layer in weighted]
    shapes = {layer.name: tuple(tuple(w.shape) for w in layer.weights) for layer in weighted}
    assert keras_applications.expected_layers(spec) == shapes


# ---- refusals: each names what is wrong, and nothing is written


def edited(src, folder, edit):
    """A copy of `src` in `folder`, changed by `edit(h5py.File)`."""
    folder.mkdir(exist_ok=True)
    path = folder / src.name
    shutil.copy(src, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def group_of(f, layer: str) -> str:
    return next(f"layers/{g}" for g in f["layers"] if f[f"layers/{g}/vars"].attrs.get("name") == layer)


def refused(src, tmp_path, error=errors.CheckpointError) -> str:
    dst = tmp_path / "out.pth"
    with pytest.raises(error) as caught:
        convert_file(src, dst, verify=False)
    assert not dst.exists() and not list(tmp_path.glob(".out.pth*"))
    return str(caught.value)


def test_missing_extra_and_misshaped_layers_are_named(saved, tmp_path):
    _, files = saved["v1"]
    src = files[".weights.h5"]

    missing = edited(src, tmp_path / "missing", lambda f: f.__delitem__(group_of(f, "conv3_block2_2_bn")))
    message = refused(missing, tmp_path)
    assert "conv3_block2_2_bn" in message and "missing" in message

    def add_layer(f):
        f.create_group("layers/dense_7/vars").attrs["name"] = "extra_dense"
        f["layers/dense_7/vars/0"] = np.zeros((4, 4), "float32")

    message = refused(edited(src, tmp_path / "extra", add_layer), tmp_path)
    assert "extra_dense" in message and "unexpected" in message

    def reshape(f):
        group = group_of(f, "conv1_conv") + "/vars"
        del f[group + "/0"]
        f[group + "/0"] = np.zeros((7, 7, 3, 32), "float32")

    message = refused(edited(src, tmp_path / "shape", reshape), tmp_path, ArchitectureError)
    assert "conv1_conv" in message and "(7, 7, 3, 32)" in message and "(7, 7, 3, 64)" in message


@pytest.mark.parametrize("kind, group", [(".weights.h5", "optimizer"), (".h5", "optimizer_weights")])
def test_optimizer_state_is_left_out_and_said(saved, kind, group, tmp_path):
    """A file saved with its optimizer (Keras 3's optimizer/, tf.keras' optimizer_weights/): the
    weights read as without it, and the notes say what was left out."""
    _, files = saved["v1"]

    def add_optimizer(f):
        f[f"{group}/vars/0"] = np.zeros(3, "float32")

    src = edited(files[kind], tmp_path / group, add_optimizer)
    state_dict, _, notes = keras_applications.read(src)
    plain, _, plain_notes = keras_applications.read(files[kind])
    assert list(state_dict) == list(plain) and all(torch.equal(state_dict[k], plain[k]) for k in plain)
    assert f"optimizer state ({group}) left out" in notes and not any("optimizer" in n for n in plain_notes)


def test_lambda_layers_are_refused(saved, tmp_path):
    _, files = saved["v1"]
    evil = {"class_name": "Lambda", "config": {"name": "evil", "function": ["4wEAAAAA", None, None],
                                               "function_type": "lambda"}}

    def add_lambda(f):
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"].append(evil)
        f.attrs["model_config"] = json.dumps(config)

    message = refused(edited(files[".h5"], tmp_path / "lambda", add_lambda), tmp_path, errors.UnsafeCheckpointError)
    assert "Lambda" in message and "evil" in message

    keras_file = tmp_path / "lambda.keras"
    with zipfile.ZipFile(files[".keras"]) as src, zipfile.ZipFile(keras_file, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                config = json.loads(data)
                config["config"]["layers"].append({"class_name": "Lambda", "config": {
                    "name": "evil", "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}}}})
                data = json.dumps(config)
            dst.writestr(item, data)
    assert "evil" in refused(keras_file, tmp_path, errors.UnsafeCheckpointError)


def test_pickled_objects_are_refused(saved, tmp_path):
    _, files = saved["v1"]
    payload = np.void(pickle.dumps({"os.system": "echo pwned"}))

    def add_pickle(f):
        layer = f["model_weights/conv1_conv"]
        layer["conv1_conv/payload"] = payload
        layer.attrs["weight_names"] = [*layer.attrs["weight_names"], "conv1_conv/payload"]

    message = refused(edited(files[".h5"], tmp_path / "pickle", add_pickle), tmp_path, errors.UnsafeCheckpointError)
    assert "payload" in message and "pickled" in message


def test_no_overwrite_without_force_and_no_legacy_output(saved, tmp_path):
    _, files = saved["v1"]
    dst = tmp_path / "taken.pth"
    dst.write_bytes(b"mine")
    with pytest.raises(atomic.OutputExistsError):
        convert_file(files[".h5"], dst, verify=False)
    assert dst.read_bytes() == b"mine"
    with pytest.raises(errors.CheckpointError, match="read, not written"):
        convert_file(files[".keras"], tmp_path / "out.h5", verify=False)
    with pytest.raises(errors.CheckpointError, match="no keras.applications network"):
        convert_file(loading_resnet18(tmp_path), tmp_path / "x.weights.h5", layout="keras_applications", verify=False)
    # keras.applications' classifier is one Dense: a fine-tuned MLP head has no place in its layout.
    mlp = tmp_path / "mlp_head.pth"
    import resnet_torch

    spec = rs.resolve("keras_resnet50", head=(("linear", 64), ("relu",)), num_classes=5)
    model = randomize_torch(resnet_torch.ResNet(spec), seed=2)
    torch.save(model.state_dict(), mlp)
    with pytest.raises(errors.CheckpointError, match="one Dense layer"):
        convert_file(mlp, tmp_path / "mlp.weights.h5", layout="keras_applications", verify=False)
    assert not (tmp_path / "mlp.weights.h5").exists()


def loading_resnet18(tmp_path):
    import resnet_torch

    path = tmp_path / "resnet18.pth"
    torch.save(resnet_torch.create_model("resnet18").state_dict(), path)
    return path


def test_cli_converts_a_keras_applications_file_both_ways(saved, tmp_path):
    import subprocess

    model, files = saved["v2"]
    pth, back = tmp_path / "model.pth", tmp_path / "back.weights.h5"
    out = subprocess.run([CLI_SCRIPT, "convert", str(files[".h5"]), str(pth), "--no-verify"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "keras_resnet50v2 (no classifier)" in out.stdout and "keras.applications layers" in out.stdout
    out = subprocess.run([CLI_SCRIPT, "convert", str(pth), str(back), "--layout", "keras-applications", "--no-verify"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert_same_arrays(keras_layout_arrays(back), all_arrays(model))


def test_keras_file_without_layer_names_is_read_by_its_config(saved, tmp_path):
    """Keras before 3.10 gave a layer's weights group no name: the config's layer order numbers
    the groups as Keras does (conv2d, conv2d_1, ...)."""
    model, files = saved["v2"]
    weights = tmp_path / "model.weights.h5"
    with zipfile.ZipFile(files[".keras"]) as archive:
        weights.write_bytes(archive.read("model.weights.h5"))
        members = {name: archive.read(name) for name in archive.namelist() if name != "model.weights.h5"}
    with h5py.File(weights, "r+") as f:
        for group in f["layers"].values():
            if "vars" in group:
                del group["vars"].attrs["name"]
    unnamed = tmp_path / "unnamed.keras"
    with zipfile.ZipFile(unnamed, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.write(weights, "model.weights.h5")
    assert_same_arrays(keras_layout_arrays(unnamed), all_arrays(model))
    with pytest.raises(errors.CheckpointError, match="carries no layer name"):
        keras_applications.read_layers(weights)  # a .weights.h5 file has no config to number them by
