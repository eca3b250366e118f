"""resnet_tf against resnet_torch (the reference) and against direct numpy computations.

Weights are randomised in PyTorch (parity.testing.randomize_torch) and ported to Keras, so a
swapped BatchNorm vector, a transposed kernel or a mis-ordered channel shows up in the outputs.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import keras  # noqa: E402  (after torch, see conftest)

import resnet_spec as rs  # noqa: E402
import resnet_tf  # noqa: E402
import resnet_torch  # noqa: E402
from parity.core.porting import torch_to_keras  # noqa: E402
from parity.testing import randomize_torch  # noqa: E402

from conftest import assert_imports_none_of, keras_model_of, ported  # noqa: E402
from conftest import sizes_for as conftest_sizes_for  # noqa: E402
from parity.core.metrics import relative_error  # noqa: E402

# The smallest registered variant of every family.
FAMILY_VARIANTS = [rs.names(family)[0] for family in rs.FAMILIES]
assert len(FAMILY_VARIANTS) == 9, FAMILY_VARIANTS


def sizes_for(name):
    return conftest_sizes_for(rs.get(name))


def keras_forward(model, x_nchw):
    out = model(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), training=False)
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else np.asarray(out)


def torch_forward(model, x_nchw):
    with torch.no_grad():
        out = model(torch.from_numpy(x_nchw))
    if isinstance(out, (list, tuple)):
        return [o.numpy().transpose(0, 2, 3, 1) for o in out]
    return out.numpy().transpose(0, 2, 3, 1) if out.dim() == 4 else out.numpy()


def assert_close(y_keras, y_torch, what):
    """The parity bound: max|diff| <= 1e-5 * max(1, max|y_torch|)."""
    assert y_keras.shape == y_torch.shape, f"{what}: shape {y_keras.shape} != torch {y_torch.shape}"
    err = relative_error(y_torch, y_keras)
    assert err <= 1e-5, f"{what}: max|diff| / max(1, max|y_torch|) = {err:.3g} > 1e-5"


def images(size, batch=2, channels=3, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, channels, *size)).astype(np.float32)


# --- every variant: the same weights, name for name and shape for shape -----------------------


def _torch_layout(shape):
    """Keras variable shape -> PyTorch tensor shape, written out independently of parity."""
    if len(shape) == 4:  # conv kernel (kh, kw, in/groups, out) -> (out, in/groups, kh, kw)
        return (shape[3], shape[2], shape[0], shape[1])
    if len(shape) == 2:  # dense kernel (in, out) -> (out, in)
        return (shape[1], shape[0])
    return tuple(shape)


_TORCH_NAME = {
    "kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
    "moving_mean": "running_mean", "moving_variance": "running_var",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", rs.names())
def test_every_variant_has_torchs_weights(name, free_keras):
    keras_model = keras_model_of(rs.get(name))  # shapes and names only: built once, shared
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        torch_model = resnet_torch.create_model(name)

    def keyed(variables):
        out = {}
        for v in variables:
            layer, attr = v.path.rsplit("/", 1)
            key = f"{layer}.{_TORCH_NAME[attr]}"
            assert key not in out, f"two Keras variables map to {key}"
            out[key] = _torch_layout(v.shape)
        return out

    params = {k: tuple(p.shape) for k, p in torch_model.named_parameters()}
    buffers = {k: tuple(b.shape) for k, b in torch_model.named_buffers() if not k.endswith(rs.BN_COUNTER)}
    assert keyed(keras_model.trainable_weights) == params
    assert keyed(keras_model.non_trainable_weights) == buffers
    counts = rs.count_parameters(rs.get(name))
    assert sum(math.prod(v.shape) for v in keras_model.trainable_weights) == counts.params
    assert sum(math.prod(v.shape) for v in keras_model.non_trainable_weights) == counts.buffers

    # parity.keras_archive writes Keras files without Keras, relying on this: within each layer
    # class, Keras' order of the layers (which numbers their groups in a saved file) is the plan's.
    weighted = [layer.name for layer in rs.plan(rs.get(name)).weighted_layers()]
    for cls in {type(layer) for layer in keras_model.layers if layer.weights}:
        keras_order = [layer.name for layer in keras_model.layers if type(layer) is cls]
        assert keras_order == [n for n in weighted if n in set(keras_order)], cls.__name__


def test_published_parameter_counts(free_keras):
    # torchvision's and the ResNeSt paper's published figures, not numbers from our code.
    for name, published in (("resnet18", 11_689_512), ("resnet50", 25_557_032), ("resnest50", 27_483_240)):
        model = resnet_tf.create_model(name)
        assert model.count_params() - sum(math.prod(v.shape) for v in model.non_trainable_weights) == published


def test_a_builder_per_registered_name():
    for name in rs.names():
        assert callable(getattr(resnet_tf, name)), name
        assert getattr(resnet_tf, name).__name__ == name


# --- forward parity with PyTorch --------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILY_VARIANTS)
def test_feature_outputs_match_torch_at_even_odd_and_non_square_sizes(name, free_keras):
    # Logits and every tapped layer of every variant are compared in test_parity; this checks
    # what a features_only model returns (for pre-activation nets, after bn_final and ReLU).
    features_torch, features_keras = ported(name, seed=1, features_only=True)
    for size in sizes_for(name):
        x = images(size, seed=size[0])
        stages_keras = keras_forward(features_keras, x)
        stages_torch = torch_forward(features_torch, x)
        assert len(stages_keras) == len(rs.plan(rs.get(name)).stages)
        for i, (yk, yt) in enumerate(zip(stages_keras, stages_torch)):
            assert_close(yk, yt, f"{name} layer{i + 1} at {size}")


@pytest.mark.parametrize(
    "name, output_stride, size",
    [("resnet18", 16, (61, 86)), ("resnet18", 8, (67, 67)), ("resnest50", 8, (61, 86)), ("resnet20", 2, (33, 33))],
)
def test_features_strides_and_dilation_match_torch(name, output_stride, size, free_keras):
    torch_model, keras_model = ported(name, seed=2, features_only=True, output_stride=output_stride)
    x = images(size)
    stages_keras = keras_forward(keras_model, x)
    stages_torch = torch_forward(torch_model, x)
    strides = torch_model.plan.feature_strides
    assert max(strides) == output_stride
    for i, (yk, yt, stride) in enumerate(zip(stages_keras, stages_torch, strides)):
        # spatial size follows PyTorch's floor arithmetic, so each side is within one of size/stride
        assert all(abs(n * stride - s) < 2 * stride for n, s in zip(yk.shape[1:3], size)), (yk.shape, stride)
        assert_close(yk, yt, f"{name} os{output_stride} layer{i + 1}")


@pytest.mark.parametrize(
    "options",
    [
        {"groups": 2, "radix": 2},  # channel order of split attention across cardinal groups
        {"radix": 1},  # the sigmoid branch
        {"avd_first": True},
    ],
)
def test_split_attention_variants_match_torch(options, free_keras):
    spec = rs.get("resnest50", layers=(1, 2, 1, 1), **options)
    torch_model = randomize_torch(resnet_torch.create_model(spec), 3).eval()
    keras_model = torch_to_keras(torch_model)
    x = images((45, 38))
    assert_close(keras_forward(keras_model, x), torch_forward(torch_model, x), str(options))


@pytest.mark.parametrize(
    "name, options",
    [
        ("resnet18", {"include_top": False}),
        ("resnet18", {"include_top": False, "pooling": None}),
        ("preact_resnet18", {"include_top": False, "pooling": "max"}),
        ("resnet18", {"pooling": "max", "drop_rate": 0.5, "num_classes": 7}),
    ],
)
def test_head_options_match_torch(name, options, free_keras):
    torch_model, keras_model = ported(name, seed=4, **options)
    x = images((53, 48))
    assert_close(keras_forward(keras_model, x), torch_forward(torch_model, x), str(options))
    if options.get("drop_rate"):
        names = [layer.name for layer in keras_model.layers]
        assert names.index("dropout") == names.index("fc") - 1


@pytest.mark.parametrize("name", ["resnet20", "preact_resnet18", "resnest50"])
def test_tap_layers_output_what_torch_modules_output(name, free_keras):
    torch_model, keras_model = ported(name, seed=5, layers=(1, 2, 1) if name == "resnet20" else (1, 2, 1, 1))
    seen = {}  # torch's outputs at the same points, recorded by hooks in forward order

    def keep(tap):
        return lambda module, inputs, output: seen.setdefault(tap, output.clone())

    hooks = [torch_model.layer1.register_forward_pre_hook(lambda module, inputs: seen.setdefault("stem", inputs[0].clone()))]
    for tap in list(keras_model.tap_layer_names())[1:-1]:  # blocks and stages
        hooks.append(torch_model.get_submodule(tap).register_forward_hook(keep(tap)))
    x = images((41, 37))
    seen["output"] = torch.from_numpy(torch_forward(torch_model, x))
    for h in hooks:
        h.remove()
    names = keras_model.tap_layer_names()
    assert list(names) == list(seen)
    assert list(names)[1:3] == ["layer1.0", "layer1"]
    tapped = keras.Model(keras_model.input, [keras_model.get_layer(n).output for n in names.values()])
    for tap, got in zip(names, tapped(x.transpose(0, 2, 3, 1), training=False)):
        ref = seen[tap].numpy()
        assert_close(np.asarray(got), ref.transpose(0, 2, 3, 1) if ref.ndim == 4 else ref, tap)


def test_create_model_arguments(free_keras):
    model = resnet_tf.create_model("resnet20", num_classes=3, input_shape=(40, 40, 3))
    assert model.input_shape == (None, 40, 40, 3) and model.output_shape == (None, 3)
    backbone = resnet_tf.resnet18(include_top=False, pooling=None)
    assert backbone.output_shape == (None, None, None, 512)
    assert backbone.spec.include_top is False and backbone.spec.pooling is None


# --- numerics that a port usually gets wrong, against direct computations ----------------------


def numpy_conv(x_nhwc, kernel_hwio, stride, padding):
    """Cross-correlation with symmetric zero padding, written out directly."""
    x = np.pad(x_nhwc, ((0, 0), (padding, padding), (padding, padding), (0, 0))).astype(np.float64)
    kh, kw, _, out = kernel_hwio.shape
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], oh, ow, out))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
            y += patch @ kernel_hwio[i, j].astype(np.float64)
    return y


@pytest.mark.parametrize("size", [(13, 13), (14, 14), (13, 16)])
def test_strided_convs_pad_symmetrically_like_pytorch(size, free_keras):
    # "same" padding would put the extra row/column at the bottom/right at even sizes (for the
    # 3x3 and 7x7 stride-2 convs here), shifting every sampled pixel.
    model = resnet_tf.resnet18d()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, *size, 3)).astype(np.float32)
    for name in ("conv1.0",):  # deep stem: 3x3, stride 2, padding 1
        layer = model.get_layer(name)
        layer.kernel.assign(rng.standard_normal(layer.kernel.shape).astype(np.float32))
        sub = keras.Model(model.input, layer.output)
        expected = numpy_conv(x, layer.kernel.numpy(), stride=2, padding=1)
        got = np.asarray(sub(x))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    classic = resnet_tf.resnet18()
    layer = classic.get_layer("conv1")  # 7x7, stride 2, padding 3
    expected = numpy_conv(x, layer.kernel.numpy(), stride=2, padding=3)
    np.testing.assert_allclose(np.asarray(keras.Model(classic.input, layer.output)(x)), expected, rtol=1e-5, atol=1e-5)


def test_preact_stem_max_pool_ignores_padding_with_negative_inputs(free_keras):
    # A pre-activation stem pools the raw conv output; with a negative input every border
    # window of a zero-padded pool would return 0 instead of its largest real value.
    model = resnet_tf.preact_resnet18()
    conv = model.get_layer("conv1")
    pooled = keras.Model(model.input, [conv.output, model.get_layer("maxpool").output])
    x = np.random.default_rng(6).standard_normal((2, 21, 18, 3)).astype(np.float32)
    conv_out, got = (np.asarray(t) for t in pooled(x))
    conv_out = conv_out - np.abs(conv_out).max() - 1.0  # all negative, same as feeding a shifted input
    got = np.asarray(model.get_layer("maxpool")(conv_out))
    padded = np.pad(conv_out, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    oh, ow = (conv_out.shape[1] - 1) // 2 + 1, (conv_out.shape[2] - 1) // 2 + 1
    expected = np.full((2, oh, ow, conv_out.shape[3]), -np.inf, np.float32)
    for i in range(3):
        for j in range(3):
            expected = np.maximum(expected, padded[:, i : i + 2 * oh - 1 : 2, j : j + 2 * ow - 1 : 2])
    np.testing.assert_array_equal(got, expected)
    assert (got < 0).all()


@pytest.mark.parametrize(
    "kind, kernel, stride, padding, ceil_mode, count_include_pad",
    [
        ("max", 3, 2, 1, False, True),  # stem pool
        ("avg", 3, 2, 1, False, True),  # ResNeSt avd
        ("avg", 2, 2, 0, True, False),  # avg-down shortcut
        ("avg", 3, 2, 1, True, False),
        ("avg", 3, 2, 1, True, True),
        ("max", 3, 2, 1, True, True),
        ("avg", 3, 3, 0, True, True),
    ],
)
def test_pool_matches_torch(kind, kernel, stride, padding, ceil_mode, count_include_pad):
    layer = resnet_tf.Pool2D(kind, kernel, stride, padding, ceil_mode, count_include_pad)
    for size in [(8, 8), (9, 9), (7, 10), (10, 11)]:
        x = np.random.default_rng(size[1]).standard_normal((2, 5, *size)).astype(np.float32) - 1.0
        t = torch.from_numpy(x)
        if kind == "max":
            ref = F.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode)
        else:
            ref = F.avg_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        got = np.asarray(layer(x.transpose(0, 2, 3, 1)))
        np.testing.assert_allclose(got, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-6)
        assert layer.compute_output_shape((2, *size, 5)) == got.shape


@pytest.mark.parametrize("size", [(8, 8), (9, 7)])
def test_zero_pad_shortcut_matches_torch(size):
    x = np.random.default_rng(7).standard_normal((2, 6, *size)).astype(np.float32)
    ref = resnet_torch.ZeroPadShortcut(2, 3, 3)(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(np.asarray(resnet_tf.ZeroPadShortcut(2, 3, 3)(x.transpose(0, 2, 3, 1))), ref)


@pytest.mark.parametrize("name", ["resnet20", "resnest50"])
def test_train_mode_forward_and_running_statistics_match_torch(name, free_keras):
    # Batch statistics in the forward; running_var updated with the unbiased variance as PyTorch does.
    from parity.core.porting import keras_to_state_dict

    small = {"layers": (1, 1, 1)} if name == "resnet20" else {"layers": (1, 1, 1, 1)}
    torch_model, keras_model = ported(name, seed=6, **small)
    # Batch 8: split attention's bn1 sees one value per image and channel, and with 3 images
    # even PyTorch float32 is 1.4e-5 away from PyTorch float64 (Keras is closer to float64).
    x = images((36, 31), batch=8)
    torch_model.train()
    assert_close(keras_forward_train(keras_model, x), torch_forward(torch_model, x), f"{name} train-mode logits")
    after = keras_to_state_dict(keras_model)
    for key, value in torch_model.state_dict().items():
        if key.endswith(("running_mean", "running_var")):
            assert_close(after[key].numpy(), value.numpy(), key)


def keras_forward_train(model, x_nchw):
    return np.asarray(model(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), training=True))


def test_batchnorm_settings_follow_pytorch(free_keras):
    model = resnet_tf.resnet18()
    bn = model.get_layer("layer1.0.bn1")
    assert bn.epsilon == 1e-5 and bn.momentum == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["resnet18", "preact_resnet18", "resnest50"])
def test_zero_init_residual_zeroes_what_torch_zeroes(name, free_keras):
    keras_model = resnet_tf.create_model(name, zero_init_residual=True)
    torch_model = resnet_torch.create_model(name, zero_init_residual=True)
    torch_zero = {k for k, v in torch_model.named_parameters() if not v.any()}
    keras_zero = {
        f"{v.path.rsplit('/', 1)[0]}.{_TORCH_NAME[v.path.rsplit('/', 1)[1]]}"
        for v in keras_model.trainable_weights
        if not np.any(v.numpy())
    }
    assert keras_zero == torch_zero
    assert len(torch_zero) > len(rs.plan(rs.get(name)).blocks)  # the zeroed tensors and biases


def test_default_initialisation_is_torchvisions(free_keras):
    model = resnet_tf.resnet50()
    kernel = model.get_layer("layer3.0.conv2").kernel.numpy()  # (3, 3, 256, 256)
    fan_out = 3 * 3 * 256
    assert kernel.std() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.02)
    bn = model.get_layer("layer3.0.bn2")
    assert (bn.gamma.numpy() == 1).all() and (bn.beta.numpy() == 0).all()
    fc = model.get_layer("fc").kernel.numpy()
    assert np.abs(fc).max() <= 2048**-0.5


# --- saving, isolation, training -----------------------------------------------------------


@pytest.mark.parametrize("spec", [rs.get("resnest50", layers=(1, 1, 2, 1), num_classes=6), rs.get("resnet20")])
def test_keras_file_round_trip_is_bit_identical(spec, tmp_path, free_keras):
    model = torch_to_keras(randomize_torch(resnet_torch.create_model(spec), 8))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, resnet_tf.ResNet) and loaded.spec == spec
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = images((35, 29)).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)))


def test_import_resnet_tf_loads_no_torch():
    assert_imports_none_of("import resnet_tf; resnet_tf.resnet20()", ("torch", "torchvision"))

