"""The plan's vocabulary: one frozen descriptor per kind of step a network is made of.

A step's `name` is its PyTorch module name (torchvision's and the official ResNeSt repository's
state_dict prefixes), unique within a network. Both builders turn each descriptor into one
layer of their framework and walk the sequences in the order given; nothing else decides the
structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Union

BN_EPS = 1e-5  # PyTorch's default; Keras' own default (1e-3) would change every output.
BN_MOMENTUM = 0.1  # PyTorch convention: new = (1 - m) * old + m * batch. Keras' momentum is 1 - m.
# PyTorch's BatchNorm also keeps this step counter in its state_dict; Keras has no counterpart.
BN_COUNTER = "num_batches_tracked"


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
    zero_init: bool = False  # the kernel starts at zero (zero_init_residual)
    unpadded: bool = False  # no padding at all (the notebook's stem), instead of "same"-like padding

    @property
    def padding(self) -> int:
        """Symmetric padding on every side, as PyTorch applies it."""
        return 0 if self.unpadded else self.dilation * (self.kernel_size - 1) // 2

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
    zero_init: bool = False  # the scale starts at zero (zero_init_residual)

    @property
    def num_params(self) -> int:
        return 2 * self.channels  # gamma, beta; plus two running buffers of the same size

    @property
    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch state_dict suffix -> shape (the BN_COUNTER aside)."""
        return {k: (self.channels,) for k in ("weight", "bias", "running_mean", "running_var")}


@dataclass(frozen=True)
class ReLU:
    name: str


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
    zero_pad: bool = False  # a max pool's padding holds zeros (a ZeroPadding2D before it), not -inf

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


@dataclass(frozen=True)
class SplitAttention:
    """ResNeSt's split-attention conv (SplAtConv2d). `splits` makes `radix` splits of C channels
    each; their sum, averaged over space, goes through `attention` to one logit per split and
    channel, laid out as (cardinality, radix, C / cardinality); a softmax over the radix within
    each cardinal group (a sigmoid when radix is 1) weights the splits, which are then summed."""

    name: str
    radix: int
    cardinality: int
    splits: tuple[Step, ...]
    attention: tuple[Step, ...]

    @property
    def channels(self) -> int:
        """C: the channels of each split, and of the output."""
        return self.splits[0].out_channels // self.radix


@dataclass(frozen=True)
class GlobalPool:
    """Average or max over the whole map, to one vector per image."""

    name: str
    kind: str  # "avg" or "max"


@dataclass(frozen=True)
class Flatten:
    """A 1x1 map to one vector of `features` per image: the step after a fixed-size head's pool."""

    name: str
    features: int


@dataclass(frozen=True)
class Dropout:
    name: str
    rate: float


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


Step = Union[Conv, BatchNorm, ReLU, Pool, ZeroPadShortcut, SplitAttention, GlobalPool, Flatten, Dropout, Linear]
Weighted = Union[Conv, BatchNorm, Linear]
WEIGHTED = (Conv, BatchNorm, Linear)


@dataclass(frozen=True)
class Block:
    """One residual block: `branch` and `shortcut` each in forward order (also PyTorch's
    state_dict order), their sum, then `after_add`.

    The shortcut reads the block's input, or with `shortcut_from` the output of that branch
    step (pre-activation projections read the normalised input). `layer(local)` looks a step
    up by its name in the block."""

    name: str  # e.g. "layer2.0"
    in_channels: int
    out_channels: int
    stride: int
    branch: tuple[Step, ...]
    shortcut: tuple[Step, ...] = ()
    shortcut_from: str | None = None
    after_add: tuple[Step, ...] = ()

    @property
    def sequences(self) -> tuple[tuple[Step, ...], ...]:
        return (self.branch, self.shortcut, self.after_add)

    @property
    def residual_end(self) -> Weighted:
        """The last weighted layer of the branch: the one that scales what the block adds."""
        return [s for s in leaves(self.branch) if isinstance(s, WEIGHTED)][-1]

    def layer(self, local: str) -> Step:
        full = f"{self.name}.{local}"
        for step in leaves(self.branch + self.shortcut + self.after_add, compounds=True):
            if step.name == full:
                return step
        raise KeyError(f"{self.name} has no layer {local!r}")

    def has(self, local: str) -> bool:
        try:
            self.layer(local)
        except KeyError:
            return False
        return True


def leaves(steps, compounds: bool = False) -> Iterator[Step]:
    """Every step of `steps` in forward order, the steps inside a split-attention conv in place
    of it (and also the conv itself first, with `compounds`)."""
    for step in steps:
        if isinstance(step, SplitAttention):
            if compounds:
                yield step
            yield from leaves(step.splits + step.attention, compounds)
        else:
            yield step
