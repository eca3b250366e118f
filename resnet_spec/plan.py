"""The layer plan: every layer of a network, with its name, derived from a ResNetSpec.

This is the single source of layer names and hyper-parameters. Both builders create exactly
the layers listed here under exactly these names (torchvision's and the official ResNeSt
repository's state_dict names), and the parity package maps weights by these names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .spec import ResNetSpec

BN_EPS = 1e-5  # PyTorch's default; Keras' own default (1e-3) would change every output.
BN_MOMENTUM = 0.1  # PyTorch convention: new = (1 - m) * old + m * batch. Keras' momentum is 1 - m.


@dataclass(frozen=True)
class Conv:
    name: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    dilation: int = 1
    groups: int = 1
    bias: bool = False

    @property
    def padding(self) -> int:
        """Symmetric padding on every side, as PyTorch applies it."""
        return self.dilation * (self.kernel_size - 1) // 2

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """PyTorch layout (out, in / groups, kh, kw)."""
        k = self.kernel_size
        return (self.out_channels, self.in_channels // self.groups, k, k)

    @property
    def num_params(self) -> int:
        o, i, kh, kw = self.weight_shape
        return o * i * kh * kw + (o if self.bias else 0)

    @property
    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch state_dict suffix -> shape."""
        return {"weight": self.weight_shape, **({"bias": (self.out_channels,)} if self.bias else {})}


@dataclass(frozen=True)
class BatchNorm:
    name: str
    channels: int
    eps: float = BN_EPS
    momentum: float = BN_MOMENTUM

    @property
    def num_params(self) -> int:
        return 2 * self.channels  # gamma, beta; plus two running buffers of the same size

    @property
    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch state_dict suffix -> shape (num_batches_tracked aside)."""
        return {k: (self.channels,) for k in ("weight", "bias", "running_mean", "running_var")}


@dataclass(frozen=True)
class Linear:
    name: str
    in_features: int
    out_features: int

    @property
    def num_params(self) -> int:
        return self.in_features * self.out_features + self.out_features

    @property
    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch state_dict suffix -> shape."""
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}


@dataclass(frozen=True)
class Pool:
    """A max or average pool without weights (stem pool, ResNeSt avd, avg-down shortcut)."""

    name: str
    kind: str  # "max" or "avg"
    kernel_size: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False
    count_include_pad: bool = True

    @property
    def is_identity(self) -> bool:
        return self.kernel_size == 1 and self.stride == 1 and self.padding == 0


@dataclass(frozen=True)
class ZeroPadShortcut:
    """Option A shortcut: keep every stride-th pixel, pad channels with zeros on both sides."""

    name: str
    stride: int
    pad_before: int
    pad_after: int


Layer = Conv | BatchNorm | Linear | Pool | ZeroPadShortcut
WEIGHTED = (Conv, BatchNorm, Linear)


@dataclass(frozen=True)
class Block:
    """One residual block. `layers` holds the residual branch, `shortcut` the shortcut's layers,
    each in forward order (which is also PyTorch's state_dict order); `layer(local)` looks one up
    by its name in the block."""

    name: str  # e.g. "layer2.0"
    kind: str
    in_channels: int
    out_channels: int
    stride: int
    layers: tuple[Layer, ...]
    shortcut: tuple[Layer, ...] = ()
    radix: int = 0
    groups: int = 1
    avd_first: bool = False

    def layer(self, local: str) -> Layer:
        full = f"{self.name}.{local}"
        for layer in self.layers + self.shortcut:
            if layer.name == full:
                return layer
        raise KeyError(f"{self.name} has no layer {local!r}")

    def has(self, local: str) -> bool:
        full = f"{self.name}.{local}"
        return any(layer.name == full for layer in self.layers + self.shortcut)


@dataclass(frozen=True)
class Plan:
    spec: ResNetSpec
    stem: tuple[Layer, ...]  # forward order
    stages: tuple[tuple[Block, ...], ...]
    head: tuple[Layer, ...]  # pre-activation final BatchNorm and/or the classifier

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(f"layer{i + 1}" for i in range(len(self.stages)))

    @property
    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for stage in self.stages for b in stage)

    @property
    def feature_channels(self) -> tuple[int, ...]:
        return tuple(stage[-1].out_channels for stage in self.stages)

    @property
    def feature_strides(self) -> tuple[int, ...]:
        """Stride of each stage's output relative to the input."""
        strides, total = [], self.spec.stem_stride
        for stage in self.stages:
            total *= stage[0].stride
            strides.append(total)
        return tuple(strides)

    def all_layers(self) -> tuple[Layer, ...]:
        """Every layer in PyTorch state_dict order."""
        out = list(self.stem)
        for b in self.blocks:
            out += b.layers + b.shortcut
        return tuple(out) + self.head

    def weighted_layers(self) -> tuple[Conv | BatchNorm | Linear, ...]:
        return tuple(layer for layer in self.all_layers() if isinstance(layer, WEIGHTED))

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every key of the network's PyTorch state_dict (num_batches_tracked aside) and its
        shape, in resnet_torch's order."""
        return {
            f"{layer.name}.{suffix}": shape
            for layer in self.weighted_layers()
            for suffix, shape in layer.tensor_shapes.items()
        }


def _stem(spec: ResNetSpec) -> tuple[Layer, ...]:
    c_in, w = spec.in_channels, spec.stem_width
    if spec.stem == "cifar":
        layers: list[Layer] = [Conv("conv1", c_in, w, 3)]
    elif spec.stem == "classic":
        layers = [Conv("conv1", c_in, w, 7, stride=2)]
    else:  # deep: the numbering follows nn.Sequential(conv, bn, relu, conv, bn, relu, conv)
        layers = [
            Conv("conv1.0", c_in, w, 3, stride=2),
            BatchNorm("conv1.1", w),
            Conv("conv1.3", w, w, 3),
            BatchNorm("conv1.4", w),
            Conv("conv1.6", w, 2 * w, 3),
        ]
    # Pre-activation networks normalise at the start of each block, not after the stem.
    if not spec.preact:
        layers.append(BatchNorm("bn1", spec.stem_channels))
    if spec.stem != "cifar":
        layers.append(Pool("maxpool", "max", 3, 2, padding=1))
    return tuple(layers)


def _shortcut(spec: ResNetSpec, name: str, c_in: int, c_out: int, stride: int) -> tuple[Layer, ...]:
    if stride == 1 and c_in == c_out:
        return ()
    d = f"{name}.downsample"
    if spec.shortcut == "zero_pad":
        pad = c_out - c_in
        return (ZeroPadShortcut(d, stride, pad // 2, pad - pad // 2),)
    if spec.shortcut == "avg_down":
        return (
            Pool(f"{d}.0", "avg", stride, stride, ceil_mode=True, count_include_pad=False),
            Conv(f"{d}.1", c_in, c_out, 1),
            BatchNorm(f"{d}.2", c_out),
        )
    if spec.preact:  # the projection sees the already normalised input
        return (Conv(f"{d}.0", c_in, c_out, 1, stride=stride),)
    return (Conv(f"{d}.0", c_in, c_out, 1, stride=stride), BatchNorm(f"{d}.1", c_out))


def _block(spec, name, c_in, planes, stride, dilation, first_dilation, is_first) -> Block:
    c_out = planes * spec.expansion
    n = name + "."
    kind = spec.block
    if spec.expansion == 1:
        convs = [
            Conv(n + "conv1", c_in, planes, 3, stride=stride, dilation=first_dilation),
            Conv(n + "conv2", planes, planes, 3, dilation=dilation),
        ]
    else:
        width = int(planes * (spec.width_per_group / 64.0)) * spec.groups
        convs = [
            Conv(n + "conv1", c_in, width, 1),
            Conv(n + "conv2", width, width, 3, stride, first_dilation, groups=spec.groups),
            Conv(n + "conv3", width, c_out, 1),
        ]
    if kind in ("basic", "bottleneck"):
        layers = []
        for i, conv in enumerate(convs, 1):
            layers += [conv, BatchNorm(f"{n}bn{i}", conv.out_channels)]
    elif spec.preact:
        layers = []
        for i, conv in enumerate(convs, 1):
            layers += [BatchNorm(f"{n}bn{i}", conv.in_channels), conv]
    else:  # splat_bottleneck: conv2 becomes a split-attention conv, optionally after/before avd
        conv1, conv2, conv3 = convs
        radix, card = spec.radix, spec.groups
        avd = spec.avd and (stride > 1 or is_first)
        inter = max(width * radix // 4, 32)
        s = n + "conv2."
        split_attention = [
            Conv(s + "conv", width, width * radix, 3, 1 if avd else stride, first_dilation, card * radix),
            BatchNorm(s + "bn0", width * radix),
            Conv(s + "fc1", width, inter, 1, groups=card, bias=True),
            BatchNorm(s + "bn1", inter),
            Conv(s + "fc2", inter, width * radix, 1, groups=card, bias=True),
        ]
        if avd:  # the pool takes over the stride, before or after the 3x3 conv
            pool = Pool(n + "avd_layer", "avg", 3, stride, padding=1)
            split_attention.insert(0 if spec.avd_first else len(split_attention), pool)
        layers = [conv1, BatchNorm(n + "bn1", width), *split_attention, conv3, BatchNorm(n + "bn3", c_out)]
        del conv2  # replaced by the split-attention conv
    return Block(
        name=name,
        kind=kind,
        in_channels=c_in,
        out_channels=c_out,
        stride=stride,
        layers=tuple(layers),
        shortcut=_shortcut(spec, name, c_in, c_out, stride),
        radix=spec.radix,
        groups=spec.groups,
        avd_first=spec.avd_first,
    )


@functools.lru_cache(maxsize=256)
def plan(spec: ResNetSpec) -> Plan:
    """Every layer of the network described by `spec`, named and in order."""
    stages = []
    c_in = spec.stem_channels
    net_stride, dilation = spec.stem_stride, 1
    for i, (blocks, planes, stride) in enumerate(zip(spec.layers, spec.widths, spec.stage_strides)):
        prev_dilation = dilation
        if net_stride >= spec.output_stride and stride > 1:
            dilation, stride = dilation * stride, 1  # keep the resolution, widen the receptive field
        else:
            net_stride *= stride
        stage = []
        for j in range(blocks):
            first = j == 0
            stage.append(
                _block(
                    spec,
                    f"layer{i + 1}.{j}",
                    c_in,
                    planes,
                    stride if first else 1,
                    dilation,
                    prev_dilation if first else dilation,
                    is_first=first and i > 0,
                )
            )
            c_in = planes * spec.expansion
        stages.append(tuple(stage))

    head: list[Layer] = []
    if spec.preact:
        head.append(BatchNorm("bn_final", c_in))
    if spec.include_top:
        head.append(Linear("fc", c_in, spec.num_classes))
    return Plan(spec=spec, stem=_stem(spec), stages=tuple(stages), head=tuple(head))


def foldable_pairs(p: Plan) -> tuple[tuple[Conv, BatchNorm], ...]:
    """(conv, BatchNorm) pairs in which the BatchNorm directly follows the conv and is the only
    reader of its output: at inference the BatchNorm folds into the conv's weight and bias.
    Pre-activation blocks keep the BatchNorm on their input (a ReLU stands between it and the
    next conv) and the final one."""
    sequences = [p.stem] + [b.layers for b in p.blocks] + [b.shortcut for b in p.blocks]
    return tuple(
        (a, b)
        for seq in sequences
        for a, b in zip(seq, seq[1:])
        if isinstance(a, Conv) and isinstance(b, BatchNorm)
    )
