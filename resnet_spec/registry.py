"""The named variants: the only table of architectures in the project."""

from __future__ import annotations

import difflib
from typing import Callable

from .keras_applications import FAMILY as KERAS_APPLICATIONS
from .spec import ResNetSpec

_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def _resnet(depth: int, family: str, name: str, **fields) -> ResNetSpec:
    block, layers = _DEPTHS[depth]
    if family == "preact":
        block = "preact_" + block
    return ResNetSpec(name=name, family=family, block=block, layers=layers, **fields)


def _variants() -> list[ResNetSpec]:
    specs = []
    for d in (18, 34, 50, 101, 152):
        specs.append(_resnet(d, "resnet", f"resnet{d}"))
    for d, groups, wpg in ((50, 32, 4), (101, 32, 8), (101, 64, 4)):
        specs.append(
            _resnet(d, "resnext", f"resnext{d}_{groups}x{wpg}d", groups=groups, width_per_group=wpg)
        )
    for d in (50, 101):
        specs.append(_resnet(d, "wide_resnet", f"wide_resnet{d}_2", width_per_group=128))
    # ResNeSt (Zhang et al. 2020): deep stem, avg-down shortcuts, radix-2 split attention with
    # avd. Only resnest50 uses a 32-wide stem.
    for layers, stem_width, size, name in (
        ((3, 4, 6, 3), 32, 224, "resnest50"),
        ((3, 4, 23, 3), 64, 256, "resnest101"),
        ((3, 24, 36, 3), 64, 320, "resnest200"),
        ((3, 30, 48, 8), 64, 416, "resnest269"),
    ):
        specs.append(
            ResNetSpec(
                name=name, family="resnest", block="splat_bottleneck", layers=layers,
                stem="deep", stem_width=stem_width, radix=2, avd=True, shortcut="avg_down",
                input_size=size,
            )
        )
    # ResNet-D ("Bag of Tricks", He et al. 2019): deep 32-wide stem and avg-down shortcuts.
    for d in (18, 34, 50, 101, 152):
        specs.append(
            _resnet(d, "resnet_d", f"resnet{d}d", stem="deep", stem_width=32, shortcut="avg_down")
        )
    # Pre-activation ("Identity Mappings", He et al. 2016).
    for d in (18, 34, 50, 101, 152):
        specs.append(_resnet(d, "preact", f"preact_resnet{d}"))
    # CIFAR ResNets of "Deep Residual Learning" sec. 4.2: depth 6n+2, widths 16/32/64, option A.
    for n in (3, 5, 7, 9, 18, 200):
        specs.append(
            ResNetSpec(
                name=f"resnet{6 * n + 2}", family="cifar", block="basic", layers=(n, n, n),
                widths=(16, 32, 64), stem="cifar", stem_width=16, shortcut="zero_pad", preprocessing="cifar10",
                input_size=32, num_classes=10,
            )
        )
    # keras.applications' ResNets: v1 is the original paper's (the stride on the first 1x1 conv,
    # biases on every conv), v2 its pre-activation form as Keras builds it (the stride on the
    # last block of stages 1-3, subsampled by a 1x1 max pool on the shortcut). Both pad the stem's
    # pool with zeros, use BatchNorm epsilon 1.001e-5 and expect Keras' preprocessing modes.
    keras = dict(family=KERAS_APPLICATIONS, bn_eps=1.001e-5, stem_pool_pad="zeros")
    for d in (50, 101, 152):
        specs.append(_resnet(d, name=f"keras_resnet{d}", conv_bias="all", stride_conv="1x1",
                             preprocessing="caffe", **keras))
    for d in (50, 101, 152):
        specs.append(ResNetSpec(name=f"keras_resnet{d}v2", block="preact_bottleneck", layers=_DEPTHS[d][1],
                                conv_bias="unnormalized", stride_block="last", shortcut="subsample",
                                preprocessing="tf", **keras))
    # The network of a widely used PyTorch CIFAR-10 tutorial notebook, trained at 96x96: an
    # unpadded 7x7 stem with a bias and no BatchNorm, a ReLU on the branch before the sum too,
    # 1x1 conv shortcuts without BatchNorm, a 3x3 average pool before the classifier.
    specs.append(
        ResNetSpec(
            name="cifar10_notebook", family="notebook", block="basic", layers=(2, 2, 2, 2), stem="unpadded",
            stem_norm=False, conv_bias="all", shortcut="conv", relu_before_add=True, head_pool=3,
            naming="notebook", input_size=96, num_classes=10, preprocessing="half",
        )
    )
    return specs


_REGISTRY: dict[str, ResNetSpec] = {s.name: s for s in _variants()}

FAMILIES = tuple(dict.fromkeys(s.family for s in _REGISTRY.values()))


class UnknownArchitecture(KeyError):
    """An architecture name that is not registered."""

    def __init__(self, name: str):
        self.name = name
        self.close_matches = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = (
            f"; did you mean {', '.join(self.close_matches)}?"
            if self.close_matches
            else f"; known architectures: {', '.join(_REGISTRY)}"
        )
        super().__init__(f"unknown architecture {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return self.args[0]


def names(family: str | None = None) -> list[str]:
    """Every registered variant, in a stable order (family by family)."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return [n for n, s in _REGISTRY.items() if family is None or s.family == family]


def get(name: str, **options) -> ResNetSpec:
    """The spec registered as `name`, with options (num_classes, output_stride, ...) applied."""
    try:
        spec = _REGISTRY[name]
    except KeyError:
        raise UnknownArchitecture(name) from None
    return spec.replace(**options) if options else spec


def resolve(name_or_spec: str | ResNetSpec, num_classes: int | None = None, **options) -> ResNetSpec:
    """The spec a framework's create_model builds: a registered name or a spec, with options
    applied; num_classes=None keeps the variant's own."""
    if num_classes is not None:
        options["num_classes"] = num_classes
    if isinstance(name_or_spec, ResNetSpec):
        return name_or_spec.replace(**options) if options else name_or_spec
    return get(name_or_spec, **options)


def builders(create_model: Callable, returns: str) -> dict[str, Callable]:
    """One function per registered variant (`resnet50(num_classes=None, **options)`) calling a
    framework's `create_model(name, num_classes, **options)`; `returns` names the model type
    for the docstrings."""

    def builder(name: str) -> Callable:
        def build(num_classes: int | None = None, **options):
            return create_model(name, num_classes, **options)

        build.__name__ = build.__qualname__ = name
        build.__doc__ = f"{name} ({_REGISTRY[name].family} family) as a {returns}; options as in create_model."
        return build

    return {name: builder(name) for name in _REGISTRY}
