"""Backbones: features mode gives the same stage feature maps in both frameworks, and a new head
for another task (dense prediction) attaches the same way in both."""


import numpy as np
import pytest
import torch
from torch import nn

import keras  # noqa: E402  (after torch, see conftest)

import parity  # noqa: E402
import resnet_spec as rs  # noqa: E402
import resnet_tf  # noqa: E402
import resnet_torch  # noqa: E402
from parity.testing import randomize_torch  # noqa: E402
from parity.core.metrics import relative_error  # noqa: E402
from conftest import ported, size_for  # noqa: E402

# One variant per family, the smallest of each.
REPRESENTATIVES = {family: rs.names(family)[0] for family in rs.FAMILIES}


pytestmark = pytest.mark.usefixtures("free_keras")  # conftest


def expected_side(n: int, stride: int, spec) -> int:
    """A map's side at `stride`: PyTorch's padded convs and pools give ceil(n / stride); the
    notebook's stem pads neither its 7x7/2 conv nor its 3x3/2 pool."""
    if spec.stem == "unpadded":
        n, stride = ((n - 7) // 2 + 1 - 3) // 2 + 1, stride // 4
    return -(-n // stride)


@pytest.mark.parametrize("name", sorted(REPRESENTATIVES.values()))
def test_stage_feature_maps_agree(name):
    spec = rs.get(name)
    size = size_for(spec, (33, 31), (61, 86))
    torch_model, keras_model = ported(name, seed=3, features_only=True)
    x = np.random.default_rng(3).standard_normal((2, 3, *size)).astype(np.float32)
    with torch.no_grad():
        t_maps = torch_model(torch.from_numpy(x))
    k_maps = keras_model(np.transpose(x, (0, 2, 3, 1)), training=False)
    assert len(t_maps) == len(k_maps) == len(spec.layers)
    for i, (t, k) in enumerate(zip(t_maps, k_maps)):
        t = np.transpose(t.numpy(), (0, 2, 3, 1))
        k = keras.ops.convert_to_numpy(k)
        assert t.shape == k.shape
        stride = rs.plan(spec).feature_strides[i]
        assert t.shape[1:3] == tuple(expected_side(n, stride, spec) for n in size)
        assert relative_error(t, k) <= 1e-5, f"stage {i + 1}"


def test_a_new_head_attaches_the_same_way_in_both_frameworks():
    # Semantic segmentation: a 1x1 conv classifier on the stride-8 map, upsampled to the input.
    classes, stride = 5, 8
    backbone = resnet_torch.create_model("resnet18", features_only=True, output_stride=stride)
    randomize_torch(backbone, seed=4)
    head = nn.Sequential(
        nn.Conv2d(backbone.spec.num_features, classes, 1),
        nn.Upsample(scale_factor=stride, mode="bilinear", align_corners=False),
    )
    torch_seg = lambda x: head(backbone(x)[-1])  # noqa: E731

    k_backbone = resnet_tf.create_model("resnet18", features_only=True, output_stride=stride)
    parity.state_dict_to_keras(backbone.state_dict(), k_backbone)
    y = keras.layers.Conv2D(classes, 1, name="seg_head")(k_backbone.outputs[-1])
    y = keras.layers.UpSampling2D(stride, interpolation="bilinear")(y)
    keras_seg = keras.Model(k_backbone.input, y)
    conv = head[0]
    keras_seg.get_layer("seg_head").set_weights(
        [conv.weight.detach().numpy().transpose(2, 3, 1, 0), conv.bias.detach().numpy()]
    )

    x = np.random.default_rng(4).standard_normal((2, 3, 64, 56)).astype(np.float32)
    backbone.eval()
    with torch.no_grad():
        t = torch_seg(torch.from_numpy(x)).numpy()
    k = keras.ops.convert_to_numpy(keras_seg(np.transpose(x, (0, 2, 3, 1)), training=False))
    assert t.shape == (2, classes, 64, 56) and k.shape == (2, 64, 56, classes)
    np.testing.assert_allclose(np.transpose(t, (0, 2, 3, 1)), k, rtol=0, atol=1e-5 * max(1.0, np.abs(t).max()))

    # The head trains on the frozen backbone: one step lowers a per-pixel loss.
    for p in backbone.parameters():
        p.requires_grad_(False)
    target = torch.from_numpy(np.random.default_rng(5).integers(0, classes, (2, 64, 56)))
    opt = torch.optim.SGD(head.parameters(), lr=0.01)
    before = nn.functional.cross_entropy(torch_seg(torch.from_numpy(x)), target)
    before.backward()
    opt.step()
    after = nn.functional.cross_entropy(torch_seg(torch.from_numpy(x)), target)
    assert after < before
