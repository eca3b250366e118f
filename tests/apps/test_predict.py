"""Predictions: one preprocessing in both frameworks, softmax over classes, label decoding, and the
real CIFAR checkpoint giving the same top-5 in PyTorch and Keras."""

from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch
import torchvision
from torchvision.transforms import v2

import keras  # noqa: E402  (after torch, see conftest)

import resnet_spec as rs  # noqa: E402
import resnet_torch  # noqa: E402
from conftest import shared_checkpoint  # noqa: E402
from parity import cli  # noqa: E402
from parity.apps import labels, predict, preprocess  # noqa: E402
from parity.files.loading import load_checkpoint, load_models  # noqa: E402

# Real photographs that scikit-learn ships (427 x 640).
PHOTOS = Path(sklearn.__file__).parent / "datasets" / "images"


def photos():
    """The two photographs and crops of them at odd, portrait and tiny (upsampled) sizes."""
    china, flower = (preprocess.load_image(PHOTOS / n) for n in ("china.jpg", "flower.jpg"))
    return [china, flower, china[13:314, 101:358], flower[200:221, 300:327]]


@pytest.mark.parametrize("name", ["resnet50", "resnest101", "resnet20"])
def test_torch_and_keras_preprocessing_give_the_same_tensor(name):
    pre = preprocess.for_spec(rs.get(name))
    images = photos()
    t = preprocess.to_torch(images, pre).numpy()
    k = keras.ops.convert_to_numpy(preprocess.to_keras(images, pre))
    assert t.shape == (len(images), 3, pre.crop, pre.crop)
    assert k.shape == (len(images), pre.crop, pre.crop, 3)
    np.testing.assert_allclose(np.transpose(t, (0, 2, 3, 1)), k, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name, resize, crop", [("resnet50", 256, 224), ("resnet20", 32, 32)])
def test_preprocessing_is_torchvisions_resize_centre_crop_normalise(name, resize, crop):
    # Reference: torchvision's own evaluation transforms on the same decoded images, in float64
    # (its float32 antialiased resize alone is 1e-5 away from float64).
    pre = preprocess.for_spec(rs.get(name))
    assert (pre.resize, pre.crop) == (resize, crop)
    reference = v2.Compose([
        v2.ToImage(), v2.ToDtype(torch.float64, scale=True),
        v2.Resize(resize, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
        v2.CenterCrop(crop), v2.Normalize(pre.mean, pre.std),
    ])
    images = photos()
    ours = preprocess.to_torch(images, pre)
    for i, image in enumerate(images):
        torch.testing.assert_close(ours[i].double(), reference(np.array(image)), rtol=0, atol=1e-5)


def test_cifar_and_imagenet_statistics():
    cifar = preprocess.for_spec(rs.get("resnet56"))
    assert cifar.mean == preprocess.CIFAR10_MEAN and cifar.std == preprocess.CIFAR10_STD
    imagenet = cifar.with_statistics("imagenet")
    assert (imagenet.resize, imagenet.crop, imagenet.mean) == (32, 32, (0.485, 0.456, 0.406))
    with pytest.raises(ValueError, match="statistics"):
        cifar.with_statistics("mnist")


@pytest.mark.parametrize("name, reference", [("keras_resnet50", "resnet50"), ("keras_resnet50v2", "resnet_v2")])
def test_keras_applications_variants_normalise_as_keras_applications(name, reference):
    """Our definition, in both frameworks, against keras.applications' own preprocess_input
    (caffe: BGR, ImageNet mean subtracted on the 0-255 scale; tf: [-1, 1]). The resize is the
    identity here (resize = crop = the image's size), so only the normalisation is compared."""
    import dataclasses

    import keras

    image = np.random.default_rng(1).integers(0, 256, (9, 9, 3), dtype=np.uint8)
    pre = dataclasses.replace(preprocess.for_spec(rs.get(name)), resize=9, crop=9)
    expected = getattr(keras.applications, reference).preprocess_input(image[None].astype("float32"))
    ours_keras = keras.ops.convert_to_numpy(preprocess.to_keras([image], pre))
    ours_torch = preprocess.to_torch([image], pre).numpy().transpose(0, 2, 3, 1)
    scale = np.abs(expected).max()
    assert np.abs(ours_keras - expected).max() <= 1e-5 * scale
    assert np.abs(ours_torch - expected).max() <= 1e-5 * scale


def test_the_notebook_and_cifar_networks_read_cifar10_class_names():
    for name in ("cifar10_notebook", "resnet20"):
        assert preprocess.dataset_of(rs.get(name)) == "cifar10"
    notebook = preprocess.for_spec(rs.get("cifar10_notebook"))
    assert (notebook.resize, notebook.crop, notebook.mean, notebook.std) == (96, 96, (0.5,) * 3, (0.5,) * 3)


def test_softmax_runs_over_the_class_axis_in_both_frameworks():
    logits = np.random.default_rng(0).standard_normal((3, 10)).astype(np.float32) * 4
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    reference = e / e.sum(axis=1, keepdims=True)
    over_batch = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
    assert not np.allclose(reference, over_batch, atol=1e-3)  # the axis makes a difference here
    t = predict.softmax_torch(torch.from_numpy(logits)).numpy()
    k = keras.ops.convert_to_numpy(predict.softmax_keras(keras.ops.convert_to_tensor(logits)))
    np.testing.assert_allclose(t, reference, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(k, reference, rtol=1e-6, atol=1e-7)


def test_class_names_are_the_published_lists():
    assert list(labels.class_names("imagenet1k")) == torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert labels.class_names("cifar10") == (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
    )
    assert labels.names_for(1000) is labels.class_names("imagenet1k")
    assert labels.names_for(10, "cifar10") is labels.class_names("cifar10")
    assert labels.names_for(10, "imagenet1k") == tuple(f"class {i}" for i in range(10))
    assert labels.names_for(3, "resnet") == ("class 0", "class 1", "class 2")


def test_top_k_decodes_labels_in_order_of_probability():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10), size=4)
    names = labels.class_names("cifar10")
    decoded = labels.top_k(probs, names, k=3)
    for row, preds in zip(probs, decoded):
        order = np.argsort(row)[::-1][:3]
        assert [p.index for p in preds] == list(order)
        assert [p.label for p in preds] == [names[i] for i in order]
        assert [p.probability for p in preds] == pytest.approx(row[order].tolist())
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        labels.top_k(probs[:, :9], names)


def converted_resnet20(tmp_path) -> Path:
    """The real pytorch_resnet_cifar10 checkpoint renamed to our keys (module. stripped,
    linear -> fc), saved as a plain state_dict."""
    raw = torch.load(shared_checkpoint("resnet20-12fca82f.th"), map_location="cpu", weights_only=True)
    sd = {}
    for key, value in raw["state_dict"].items():
        key = key.removeprefix("module.")
        sd["fc" + key[len("linear"):] if key.startswith("linear.") else key] = value
    path = tmp_path / "resnet20.pth"
    torch.save(sd, path)
    return path


@pytest.mark.usefixtures("free_keras")
def test_real_checkpoint_gives_the_same_top5_in_both_frameworks(tmp_path):
    weights = converted_resnet20(tmp_path)
    models = load_models(weights, arch="resnet20")
    images = photos()
    pre = preprocess.for_spec(models["torch"].spec).with_statistics("imagenet")  # as it was trained
    results = predict.predict(models, images, pre, k=5)
    (pt, top_t), (pk, top_k) = results["torch"], results["keras"]
    assert [[p.index for p in row] for row in top_t] == [[p.index for p in row] for row in top_k]
    np.testing.assert_allclose(pt, pk, rtol=0, atol=1e-5)

    # Reference: the checkpoint loaded directly into resnet_torch, fed by torchvision's transforms.
    model = resnet_torch.resnet20()
    model.load_state_dict(torch.load(weights, weights_only=True))
    transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize(32, antialias=True),
                            v2.CenterCrop(32), v2.Normalize(pre.mean, pre.std)])
    with torch.no_grad():
        ref = torch.softmax(model.eval()(torch.stack([transform(np.array(im)) for im in images])), dim=1).numpy()
    np.testing.assert_allclose(pt, ref, rtol=0, atol=1e-5)
    assert [p.index for p in top_t[0]] == list(np.argsort(-ref[0])[:5])
    assert top_t[0][0].label == labels.class_names("cifar10")[int(ref[0].argmax())]


@pytest.mark.usefixtures("free_keras")
def test_predict_command_prints_both_frameworks_and_reads_keras_files(tmp_path, capsys):
    weights = converted_resnet20(tmp_path)
    image = tmp_path / "odd.png"
    from PIL import Image

    Image.fromarray(photos()[2]).save(image)
    argv = [str(image), "--weights", str(weights), "--arch", "resnet20", "--framework", "both", "--topk", "3"]
    assert cli.main(["predict", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(image) and out[1].split() == ["#", "torch", "keras"]
    rows = [line.split() for line in out[2:5]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    for r in rows:  # the same label and probability on both sides
        assert r[1:3] == r[3:5] and r[1] in labels.class_names("cifar10")

    # The original file, as pytorch_resnet_cifar10 saved it: architecture inferred, same output.
    original = [str(image), "--weights", str(shared_checkpoint("resnet20-12fca82f.th")), "--topk", "3"]
    assert cli.main(["predict", *original]) == 0
    assert [line.split()[:3] for line in capsys.readouterr().out.splitlines()[2:5]] == [r[:3] for r in rows]

    # The same weights as another tool might keep them: beside a second network, under a prefix.
    state_dict, _ = load_checkpoint(shared_checkpoint("resnet20-12fca82f.th"))
    nested = tmp_path / "distilled.pth"
    torch.save({"student": {k: v.clone() for k, v in state_dict.items()},
                "teacher": {f"net.{k}": v for k, v in state_dict.items()}}, nested)
    assert cli.main(["predict", str(image), "--weights", str(nested), "--topk", "3"]) == 2  # which one?
    capsys.readouterr()
    assert cli.main(["predict", str(image), "--weights", str(nested), "--key", "teacher", "--prefix", "net.",
                     "--topk", "3"]) == 0
    assert [line.split()[:3] for line in capsys.readouterr().out.splitlines()[2:5]] == [r[:3] for r in rows]

    keras_file = tmp_path / "resnet20.keras"
    load_models(weights, ("keras",), arch="resnet20")["keras"].save(keras_file)
    assert cli.main(["predict", str(image), "--weights", str(keras_file), "--topk", "3"]) == 0
    again = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in again[2:5]] == [r[:3] for r in rows]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{image}"], "--weights FILE"),
        (["{image}", "--weights", "{weights}"], "{weights}"),
        (["{image}", "--arch", "resnt20"], "did you mean resnet20"),
        (["{tmp}/missing.jpg", "--arch", "resnet20"], "no such image file"),
        (["{weights}", "--arch", "resnet20"], "not an image"),
    ],
)
def test_predict_command_errors(tmp_path, capsys, argv, message):
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(photos()[3]).save(image)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not used")
    argv = [a.format(image=image, weights=weights, tmp=tmp_path) for a in argv]
    assert cli.main(["predict", *argv]) == 2
    assert message.format(weights=weights) in capsys.readouterr().err
