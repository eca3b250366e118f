"""resnet_torch against real references: torchvision and timm models with randomised weights."""

import os
import subprocess
import sys

import pytest
import timm
import torch
import torchvision

import resnet_spec as rs
import resnet_torch
from conftest import IMAGENET_SIZES, assert_imports_none_of, size_for, sizes_for
from parity.testing import randomize_torch
from parity.core.metrics import relative_error

TORCHVISION = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
]
# timm's models with the same layout and state_dict names: ResNeSt (timm's resnest*d/e are the
# official ResNeSt networks) and ResNet-D.
TIMM = {
    "resnest50": "resnest50d", "resnest101": "resnest101e",
    "resnet18d": "resnet18d", "resnet34d": "resnet34d", "resnet50d": "resnet50d",
    "resnet101d": "resnet101d", "resnet152d": "resnet152d",
}


def assert_close(ours, ref, rel):
    err = relative_error(ref, ours)
    assert err <= rel, f"max|diff| / max(1, max|ref|) = {err:.3g} > {rel:.3g}"


def uninitialised(build):
    """The module `build()` makes, its tensors allocated but not initialised (every floating one is
    randomised next): the initialisation of the largest networks takes a second each."""
    with torch.device("meta"):
        module = build()
    module = module.to_empty(device="cpu")
    for name, buffer in module.named_buffers():
        if not buffer.is_floating_point():
            buffer.zero_()  # BatchNorm counters
    return module


def _same_outputs(ours, ref, sizes, rel=1e-6, batch=2):
    """Randomise `ref`, load its state_dict into `ours` strictly, compare in eval mode."""
    randomize_torch(ref, seed=1)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.eval(), ref.eval()
    with torch.no_grad():
        for h, w in sizes:
            x = torch.randn(batch, 3, h, w)
            assert_close(ours(x), ref(x), rel)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_checkpoints_load_strictly_and_agree(name):
    sizes = [(224, 224), (97, 97), (81, 118)] if name in ("resnet18", "resnet50") else [(224, 224), (75, 98)]
    _same_outputs(resnet_torch.create_model(name), uninitialised(getattr(torchvision.models, name)), sizes)


@pytest.mark.parametrize("name", list(TIMM))
def test_timm_resnest_and_resnet_d_load_strictly_and_agree(name):
    _same_outputs(resnet_torch.create_model(name), uninitialised(lambda: timm.create_model(TIMM[name])),
                  [(224, 224), (75, 98)])


def test_dilated_resnet50_agrees_with_torchvision():
    ours = resnet_torch.create_model("resnet50", output_stride=8)
    ref = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
    _same_outputs(ours, ref, [(65, 80)])


@pytest.mark.parametrize(
    "head, fc",
    [
        ((("dropout", 0.2),), lambda: torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(512, 10))),
        ((("linear", 256), ("relu",), ("dropout", 0.3)),
         lambda: torch.nn.Sequential(torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                     torch.nn.Linear(256, 10))),
    ],
    ids=["resnet18-dropout-linear", "resnet18-mlp"],
)
def test_fine_tuned_heads_load_torchvision_strictly_and_agree(head, fc):
    ref = torchvision.models.resnet18()
    ref.fc = fc()  # as fine-tuning replaces it
    ours = resnet_torch.create_model("resnet18", num_classes=10, head=head)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    _same_outputs(ours, ref, IMAGENET_SIZES)


def test_zero_init_residual_matches_torchvision():
    ours = resnet_torch.create_model("resnet50", zero_init_residual=True)
    ref = torchvision.models.resnet50(zero_init_residual=True)
    zeros = {k for k, v in ref.state_dict().items() if v.dim() == 1 and v.abs().sum() == 0}
    ours_zeros = {k for k, v in ours.state_dict().items() if v.dim() == 1 and v.abs().sum() == 0}
    # BatchNorm shifts and running means start at zero in both; the scales named bn3 must too.
    assert ours_zeros == zeros
    assert {k for k in zeros if k.endswith("bn3.weight")} == {
        f"{b.name}.bn3.weight" for b in ours.plan.blocks
    }


def test_zero_init_residual_makes_every_preact_block_an_identity_or_projection():
    model = resnet_torch.create_model("preact_resnet18", zero_init_residual=True).eval()
    block = model.layer1[1]  # no shortcut layers: the block must return its input
    x = torch.randn(2, 64, 9, 9)
    with torch.no_grad():
        assert torch.equal(block(x), x)


@pytest.mark.parametrize("name", list(rs.names()))
def test_parameters_and_buffers_match_spec_and_names_match_plan(name):
    with torch.device("meta"):  # shapes and counts only: nothing to allocate or initialise
        model = resnet_torch.create_model(name)
    counts = rs.count_parameters(model.spec)
    assert sum(p.numel() for p in model.parameters()) == counts.params
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith(rs.BN_COUNTER))
    assert buffers == counts.buffers
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith(rs.BN_COUNTER)}
    assert list(shapes.items()) == list(model.plan.state_dict_shapes().items())


def test_resnest_uses_the_official_key_layout():
    sd = resnet_torch.resnest50().state_dict()
    for key, shape in {
        "conv1.0.weight": (32, 3, 3, 3),
        "conv1.1.running_var": (32,),
        "conv1.3.weight": (32, 32, 3, 3),
        "conv1.6.weight": (64, 32, 3, 3),
        "bn1.weight": (64,),
        "layer1.0.conv2.conv.weight": (128, 32, 3, 3),  # radix 2 splits, groups = radix
        "layer1.0.conv2.bn0.weight": (128,),
        "layer1.0.conv2.fc1.weight": (32, 64, 1, 1),
        "layer1.0.conv2.fc1.bias": (32,),
        "layer1.0.conv2.bn1.weight": (32,),
        "layer1.0.conv2.fc2.weight": (128, 32, 1, 1),
        "layer1.0.downsample.1.weight": (256, 64, 1, 1),
        "layer1.0.downsample.2.weight": (256,),
        "layer2.0.downsample.1.weight": (512, 256, 1, 1),
        "fc.weight": (1000, 2048),
    }.items():
        assert tuple(sd[key].shape) == shape, key
    assert "layer1.0.bn2.weight" not in sd


def test_split_attention_agrees_with_a_functional_reference():
    """The official algorithm written out step by step: split, sum, squeeze, rSoftMax per
    cardinal group, weighted sum. Cardinality 2 and radix 4 so a wrong channel order shows."""
    spec = rs.get("resnest50").replace(groups=2, radix=4, layers=(1, 1, 1, 1))
    model = randomize_torch(resnet_torch.create_model(spec), seed=3).eval()
    sa = model.layer2[0].conv2
    x = torch.randn(2, sa.conv.in_channels, 11, 13)
    radix, card = 4, 2
    with torch.no_grad():
        y = torch.relu(sa.bn0(sa.conv(x)))
        splits = torch.split(y, y.shape[1] // radix, dim=1)
        gap = torch.relu(sa.bn1(sa.fc1(sum(splits).mean((2, 3), keepdim=True))))
        att = sa.fc2(gap).view(2, card, radix, -1).transpose(1, 2)
        att = torch.softmax(att, dim=1).reshape(2, -1)
        atts = torch.split(att.view(2, -1, 1, 1), y.shape[1] // radix, dim=1)
        expected = sum(a * s for a, s in zip(atts, splits))
        torch.testing.assert_close(sa(x), expected, rtol=0, atol=1e-6)


def _functional_cifar_forward(sd, x):
    """An independent forward of a pytorch_resnet_cifar10 network from its raw tensors."""
    import torch.nn.functional as F

    def bn(t, p):
        return F.batch_norm(t, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                            sd[p + ".bias"], False, 0.0, 1e-5)

    out = F.relu(bn(F.conv2d(x, sd["conv1.weight"], padding=1), "bn1"))
    for stage in (1, 2, 3):
        i = 0
        while f"layer{stage}.{i}.conv1.weight" in sd:
            p = f"layer{stage}.{i}"
            w1 = sd[p + ".conv1.weight"]
            stride = 2 if stage > 1 and i == 0 else 1
            h = F.relu(bn(F.conv2d(out, w1, stride=stride, padding=1), p + ".bn1"))
            h = bn(F.conv2d(h, sd[p + ".conv2.weight"], padding=1), p + ".bn2")
            short = out
            if stride != 1 or w1.shape[0] != w1.shape[1]:
                planes = w1.shape[0]
                short = F.pad(out[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
            out = F.relu(h + short)
            i += 1
    out = F.adaptive_avg_pool2d(out, 1).flatten(1)
    return F.linear(out, sd["fc.weight"], sd["fc.bias"])


def test_real_resnet20_checkpoint_loads_and_matches_a_functional_forward():
    from conftest import shared_checkpoint

    raw = torch.load(shared_checkpoint("resnet20-12fca82f.th"), map_location="cpu", weights_only=True)
    sd = {}
    for key, value in raw["state_dict"].items():
        key = key.removeprefix("module.")
        sd["fc" + key[len("linear"):] if key.startswith("linear.") else key] = value
    model = resnet_torch.resnet20()
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _functional_cifar_forward(sd, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(rs.names()))
def test_every_variant_runs_forward_and_backward_at_odd_sizes(name):
    spec = rs.get(name)
    h, w = size_for(spec, (33, 27), (35, 49))
    model = resnet_torch.create_model(name, num_classes=5)
    x = torch.randn(2, 3, h, w, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 5)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters())


def _ceil_div(n, d):
    return -(-n // d)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d", "resnest50", "resnet50d",
                                  "preact_resnet50", "resnet20"])
def test_features_mode_and_output_stride(name):
    spec = rs.get(name)
    sizes = sizes_for(spec)
    native = (1, 2, 4) if spec.family == "cifar" else (4, 8, 16, 32)
    for output_stride in sorted({native[-1], native[-1] // 2, native[-1] // 4}):
        model = resnet_torch.create_model(name, features_only=True, output_stride=output_stride).eval()
        strides = tuple(min(s, output_stride) for s in native)
        assert model.plan.feature_strides == strides
        for h, w in sizes:
            with torch.no_grad():
                feats = model(torch.randn(2, 3, h, w))
            assert [tuple(f.shape) for f in feats] == [
                (2, c, _ceil_div(h, s), _ceil_div(w, s)) for c, s in zip(model.plan.feature_channels, strides)
            ]


def test_features_equal_the_stages_of_the_classifier_model():
    full = randomize_torch(resnet_torch.resnet18(), seed=2).eval()
    feats = resnet_torch.resnet18(features_only=True).eval()
    feats.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        last = feats(x)[-1]
        torch.testing.assert_close(full.fc(last.mean((2, 3))), full(x), rtol=0, atol=1e-6)


def test_head_options():
    x = torch.randn(2, 3, 64, 64)
    assert resnet_torch.resnet18(include_top=False)(x).shape == (2, 512)
    assert resnet_torch.resnet18(include_top=False, pooling=None)(x).shape == (2, 512, 2, 2)
    model = randomize_torch(resnet_torch.resnet18(pooling="max", drop_rate=0.5), seed=0)
    assert "fc.weight" in model.state_dict()
    model.eval()
    with torch.no_grad():
        features = torch.amax(model.forward_features(x)[-1], dim=(2, 3))
        torch.testing.assert_close(model(x), model.fc(features))
    model.train()
    assert not torch.equal(model(x), model(x))  # dropout is active in training


def test_macs_from_spec_equal_a_count_over_the_built_module():
    for name, size in (("resnest50", (67, 45)), ("resnet50d", (61, 86)), ("resnet20", (33, 31))):
        model = resnet_torch.create_model(name).eval()
        total = 0

        def hook(module, inputs, output):
            nonlocal total
            if isinstance(module, torch.nn.Conv2d):
                total += output[0].numel() * module.weight[0].numel()
            elif isinstance(module, torch.nn.Linear):
                total += module.weight.numel()

        handles = [m.register_forward_hook(hook) for m in model.modules()]
        with torch.no_grad():
            model(torch.randn(1, 3, *size))
        for handle in handles:
            handle.remove()
        assert rs.count_macs(model.spec, size) == total, name


def test_bad_input_is_a_clear_error():
    model = resnet_torch.resnet18()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(2, 64, 64, 3\)"):
        model(torch.randn(2, 64, 64, 3))
    with pytest.raises(ValueError, match="got shape"):
        model(torch.randn(3, 64, 64))


def test_every_name_has_a_builder():
    for name in rs.names():
        assert getattr(resnet_torch, name).__name__ == name
    assert resnet_torch.resnet20().spec.num_classes == 10
    assert resnet_torch.resnet50(num_classes=3).fc.out_features == 3


def test_import_resnet_torch_loads_no_tensorflow_or_keras():
    assert_imports_none_of("import resnet_torch; resnet_torch.resnet20()", ("tensorflow", "keras"))


def test_resnet_torch_then_tensorflow_then_torchvision_share_a_process():
    # Without resnet_torch loading triton up front, torchvision (or any lazy triton load) after
    # TensorFlow kills the process with a segmentation fault.
    code = "import resnet_torch, tensorflow, torchvision, resnet_tf; resnet_torch.resnet18(); print('ok')"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}  # whichever process runs this test
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-500:])
