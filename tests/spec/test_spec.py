"""The framework-free spec: registry, validation, and counts against published figures."""

import dataclasses
import json
import re

import pytest

import resnet_spec as rs
from conftest import assert_imports_none_of

# DESIGN.md's table of variants.
EXPECTED_NAMES = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "wide_resnet50_2", "wide_resnet101_2",
    "resnest50", "resnest101", "resnest200", "resnest269",
    "resnet18d", "resnet34d", "resnet50d", "resnet101d", "resnet152d",
    "preact_resnet18", "preact_resnet34", "preact_resnet50", "preact_resnet101", "preact_resnet152",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
    "keras_resnet50", "keras_resnet101", "keras_resnet152",
    "keras_resnet50v2", "keras_resnet101v2", "keras_resnet152v2",
    "cifar10_notebook",
]

# Published parameter counts: torchvision's model docs, the official ResNeSt repository, timm's
# resnet*d models, and "Deep Residual Learning" table 6 (CIFAR-10, 10 classes).
PUBLISHED_PARAMS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336, "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240, "wide_resnet101_2": 126_886_696,
    "resnest50": 27_483_240, "resnest101": 48_275_016, "resnest200": 70_201_544,
    "resnest269": 110_929_480,
    "resnet18d": 11_708_744, "resnet34d": 21_816_904, "resnet50d": 25_576_264,
    "resnet101d": 44_568_392, "resnet152d": 60_212_040,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
    "resnet110": 1_727_962, "resnet1202": 19_421_274,
}

# keras.applications' own count_params() (every weight, the BatchNorm moving statistics included)
# of ResNet50, ResNet101, ResNet152 and their V2 forms with the ImageNet head.
KERAS_APPLICATIONS_COUNTS = {
    "keras_resnet50": 25_636_712, "keras_resnet101": 44_707_176, "keras_resnet152": 60_419_944,
    "keras_resnet50v2": 25_613_800, "keras_resnet101v2": 44_675_560, "keras_resnet152v2": 60_380_648,
}

# torchvision's published GFLOPS (multiply-accumulates of convs and fc at 224x224), 2 decimals.
PUBLISHED_GMACS = {
    "resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
    "resnext50_32x4d": 4.23, "resnext101_32x8d": 16.41, "resnext101_64x4d": 15.46,
    "wide_resnet50_2": 11.40, "wide_resnet101_2": 22.75,
}


def test_registry_has_every_variant_of_the_design():
    assert rs.names() == EXPECTED_NAMES
    for name in EXPECTED_NAMES:
        assert rs.get(name).name == name


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_parameter_count_from_spec_equals_published(name):
    assert rs.count_parameters(rs.get(name)).params == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", list(KERAS_APPLICATIONS_COUNTS))
def test_keras_applications_counts_from_spec_equal_keras_count_params(name):
    counts = rs.count_parameters(rs.get(name))
    assert counts.params + counts.buffers == KERAS_APPLICATIONS_COUNTS[name]


@pytest.mark.parametrize("name", list(PUBLISHED_GMACS))
def test_macs_from_spec_equal_torchvision_published(name):
    assert rs.count_macs(rs.get(name)) / 1e9 == pytest.approx(PUBLISHED_GMACS[name], abs=0.005)


def test_preact_counts_follow_from_the_paper_layout():
    # Pre-activation moves each BatchNorm in front of its conv: a block's BNs normalise its input
    # and inner widths instead of its inner and output widths; over a whole network the stem BN
    # and the final BN cancel that shift exactly. What is left is that projection shortcuts
    # have no BatchNorm of their own.
    for depth in (18, 50, 152):
        plain = rs.count_parameters(rs.get(f"resnet{depth}"))
        pre = rs.count_parameters(rs.get(f"preact_resnet{depth}"))
        shortcut_bns = sum(
            2 * b.out_channels for b in rs.plan(rs.get(f"resnet{depth}")).blocks if b.shortcut
        )
        assert pre.params == plain.params - shortcut_bns


def test_depth_matches_the_name():
    named = [n for n in EXPECTED_NAMES if re.search(r"res(?:net|next|nest)\d", n)]
    assert set(EXPECTED_NAMES) - set(named) == {"cifar10_notebook"}
    for name in named:
        depth = int(re.search(r"res(?:net|next|nest)(\d+)", name).group(1))
        assert rs.get(name).depth == depth, name
    assert rs.get("cifar10_notebook").depth == 18  # 2-2-2-2 basic blocks: a ResNet-18 by its layers


def test_unknown_name_suggests_close_matches():
    with pytest.raises(rs.UnknownArchitecture) as err:
        rs.get("resnet5")
    assert "resnet50" in err.value.close_matches
    assert "resnet50" in str(err.value)
    with pytest.raises(KeyError):  # still a KeyError for callers that catch that
        rs.get("resnext50")


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(block="basic", groups=32), "groups"),
        (dict(block="basic", width_per_group=4), "width_per_group"),
        (dict(block="bottleneck", radix=2), "radix"),
        (dict(block="splat_bottleneck", radix=0), "radix"),
        (dict(block="bottleneck", avd=True), "avd"),
        (dict(block="bottleneck", shortcut="zero_pad"), "shortcut"),
        (dict(output_stride=12), "output_stride"),
        (dict(pooling="mean"), "pooling"),
        (dict(num_classes=0), "num_classes"),
        (dict(drop_rate=1.0), "drop_rate"),
        (dict(layers=(2, 2, 2), widths=(64, 128, 256, 512)), "widths"),
        (dict(stem="huge"), "stem"),
        (dict(head=(("linear", 0),)), "head"),
        (dict(head=(("conv", 3),)), "head"),
        (dict(head=(("dropout", 1.0),)), "head"),
        (dict(head=(("dropout",),)), "head"),
        (dict(head=(("relu", 2),)), "head"),
        (dict(head="relu"), "head"),
    ],
)
def test_invalid_combinations_name_the_field(changes, field):
    with pytest.raises(rs.SpecError) as err:
        rs.get("resnet18").replace(**changes)
    assert err.value.field == field
    assert str(err.value).startswith(field + ":")


def test_unknown_option_is_a_type_error_listing_the_known_ones():
    with pytest.raises(TypeError, match="num_clases.*num_classes"):
        rs.get("resnet18", num_clases=10)


def test_specs_are_frozen_and_options_do_not_leak_into_the_registry():
    spec = rs.get("resnet50", num_classes=7, output_stride=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.num_classes = 3
    assert rs.get("resnet50").num_classes == 1000
    assert rs.get("resnet50").output_stride == 32
    assert rs.get("resnet20").output_stride == 4


def test_output_stride_becomes_dilation():
    p = rs.plan(rs.get("resnet50", output_stride=8))
    assert p.feature_strides == (4, 8, 8, 8)
    # The first block of a dilated stage keeps the previous dilation (torchvision's rule).
    assert p.stages[2][0].layer("conv2").dilation == 1
    assert p.stages[2][1].layer("conv2").dilation == 2
    assert p.stages[3][0].layer("conv2").dilation == 2
    assert p.stages[3][1].layer("conv2").dilation == 4
    assert rs.plan(rs.get("resnet20", output_stride=1)).feature_strides == (1, 1, 1)


def test_features_only_drops_the_classifier():
    spec = rs.get("preact_resnet18", features_only=True)
    assert not spec.include_top
    p = rs.plan(spec)
    assert [step.name for step in p.final + p.head] == ["bn_final", "relu_final"]


def test_a_fine_tuned_head_is_a_sequence_of_layers_numbered_as_nn_sequential_numbers_them():
    # As a config (JSON) gives it: lists, and a bare name for a layer without arguments.
    spec = rs.get("resnet18", num_classes=5, head=[["linear", 256], "relu", ["dropout", 0.3]])
    assert spec.head == (("linear", 256), ("relu",), ("dropout", 0.3))
    p = rs.plan(spec)
    assert p.head == (rs.GlobalPool("global_pool", "avg"), rs.Linear("fc.0", 512, 256), rs.ReLU("fc.1"),
                      rs.Dropout("fc.2", 0.3), rs.Linear("fc.3", 256, 5))
    # torchvision's resnet18 with fc = Sequential(Linear(512, 256), ReLU, Dropout, Linear(256, 5)).
    assert rs.count_parameters(spec).params == 11_689_512 - (512 * 1000 + 1000) + (512 * 256 + 256) + (256 * 5 + 5)
    assert rs.ResNetSpec.from_config(json.loads(json.dumps(spec.to_config()))) == spec
    assert rs.plan(spec.replace(include_top=False)).head == (rs.GlobalPool("global_pool", "avg"),)
    # The default head is torchvision's single Linear, as before.
    assert rs.plan(rs.get("resnet18")).head[-1] == rs.Linear("fc", 512, 1000)
    assert rs.plan(rs.get("resnet18", head=(("dropout", 0.2),))).head[1:] == (
        rs.Dropout("fc.0", 0.2), rs.Linear("fc.1", 512, 1000))


def test_resnet_spec_imports_the_standard_library_only():
    assert_imports_none_of("import resnet_spec", ("torch", "tensorflow", "keras", "numpy"))
