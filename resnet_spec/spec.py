"""The framework-free description of one ResNet: a frozen dataclass that is validated on creation.

A `ResNetSpec` holds everything needed to build a network, both its architecture (stem, block
kind, depth, widths, shortcut) and the options a user picks when creating a model (classes,
head, output stride, ...). Builders read nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .steps import BN_EPS

STEMS = ("classic", "deep", "cifar", "unpadded")
SHORTCUTS = ("projection", "avg_down", "zero_pad", "conv", "subsample")
POOLINGS = ("avg", "max", None)
# Which convs have a bias: none (torchvision), all (keras.applications v1, the notebook), or
# those no BatchNorm follows (keras.applications v2: the stem, each block's last conv, projections).
CONV_BIASES = ("none", "all", "unnormalized")
STRIDE_CONVS = ("3x3", "1x1")  # where a bottleneck's stride sits: v1.5 (torchvision) or v1 (the paper)
STRIDE_BLOCKS = ("first", "last")  # which block of a stage strides: the first, or the last of the stage before
STEM_POOL_PADS = ("-inf", "zeros")  # what the stem's max pool pads with: PyTorch's, or a ZeroPadding2D's
NAMINGS = ("torchvision", "notebook")  # whose module names the plan uses
# Each variant's evaluation preprocessing; parity.apps.preprocess holds the numbers of each.
PREPROCESSINGS = ("imagenet", "caffe", "tf", "cifar10", "half")
# The layers a classifier head may have before its last Linear (see ResNetSpec.head):
# ("linear", features), ("relu",), ("dropout", rate).
HEAD_LAYERS = ("linear", "relu", "dropout")


@dataclass(frozen=True)
class BlockKind:
    """What one kind of residual block is made of. The plan builds every block from these facts
    alone, so this table is the only place a block kind is told apart from another."""

    convs: int  # 2: two 3x3 convs (basic); 3: 1x1, 3x3, 1x1 (bottleneck)
    expansion: int  # a block outputs expansion * "planes" channels
    preact: bool = False  # BatchNorm and ReLU before each conv, nothing after the sum
    split_attention: bool = False  # the 3x3 conv is ResNeSt's split-attention conv


BLOCK_KINDS = {
    "basic": BlockKind(convs=2, expansion=1),
    "bottleneck": BlockKind(convs=3, expansion=4),
    "preact_basic": BlockKind(convs=2, expansion=1, preact=True),
    "preact_bottleneck": BlockKind(convs=3, expansion=4, preact=True),
    "splat_bottleneck": BlockKind(convs=3, expansion=4, split_attention=True),
}
BLOCKS = tuple(BLOCK_KINDS)


class SpecError(ValueError):
    """An invalid field value or combination of fields in a ResNetSpec."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ResNetSpec:
    """A complete description of one network.

    Architecture fields:
      block            one of BLOCKS.
      layers           blocks per stage, e.g. (3, 4, 6, 3).
      widths           "planes" per stage; a stage outputs widths[i] * expansion channels.
      stem             "classic" (7x7/2 conv, max pool), "deep" (three 3x3 convs, max pool;
                       ResNet-D and ResNeSt) or "cifar" (one 3x3 conv, stride 1, no pool).
      stem_width       classic/cifar: the stem's output channels; deep: the width of its first
                       two convs (it outputs twice that).
      groups, width_per_group
                       ResNeXt cardinality and channels per group of the 3x3 conv.
      radix            splits of the split-attention conv (ResNeSt); 0 for other blocks.
      avd, avd_first   ResNeSt's average-pool downsampling in place of a strided 3x3 conv,
                       applied after (or, with avd_first, before) that conv.
      shortcut         "projection" (strided 1x1 conv), "avg_down" (average pool, then 1x1 conv)
                       or "zero_pad" (option A: subsample and pad channels with zeros).
      in_channels, input_size
                       channels and native side length of the input images.
      conv_bias        which convs have a bias (CONV_BIASES).
      bn_eps           every BatchNorm's epsilon (keras.applications: 1.001e-5).
      stride_conv      where a strided bottleneck strides: its 3x3 conv (v1.5) or its first 1x1.
      stride_block     which block strides: the first of a stage, or (keras.applications v2) the
                       last of the stage before, whose shortcut then subsamples.
      stem_norm        BatchNorm and ReLU after the stem's conv; None: unless pre-activation.
      stem_pool_pad    what the stem's max pool pads with (STEM_POOL_PADS): -inf as PyTorch pads,
                       or zeros as keras.applications' ZeroPadding2D, seen by negative inputs
                       where no ReLU comes first.
      relu_before_add  post-activation blocks also apply a ReLU to the branch before the sum.
      head_pool        0: global pooling before the classifier; k > 0: a k x k average pool of
                       stride k, then flatten (a fixed-size head: the native input's last map
                       must pool to 1x1, and a model with this head takes only that size).
      naming           whose module names the plan uses (NAMINGS): torchvision's, or those of
                       the CIFAR-10 notebook (block1, block2.0, block2.1.conv1, ..., classifier).
      preprocessing    the evaluation preprocessing the weights expect (PREPROCESSINGS).

    Options (same meaning in every framework):
      num_classes, include_top, pooling ("avg", "max" or None), drop_rate (dropout before the
      classifier), output_stride (replace the last strides by dilation), zero_init_residual
      (zero the last BatchNorm scale, or for pre-activation blocks the last conv, of each
      residual branch), features_only (return every stage's feature map).
      head             the classifier head's layers before its last Linear, as fine-tuning puts
                       them there: () for one Linear named "fc" (torchvision's), else a tuple of
                       ("linear", features), ("relu",) and ("dropout", rate), built as an
                       nn.Sequential "fc" whose children fc.0, fc.1, ... are these layers and then
                       the Linear to num_classes. Only used with include_top.
    """

    name: str
    family: str
    block: str
    layers: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem: str = "classic"
    stem_width: int = 64
    groups: int = 1
    width_per_group: int = 64
    radix: int = 0
    avd: bool = False
    avd_first: bool = False
    shortcut: str = "projection"
    in_channels: int = 3
    input_size: int = 224
    conv_bias: str = "none"
    bn_eps: float = BN_EPS
    stride_conv: str = "3x3"
    stride_block: str = "first"
    stem_norm: bool | None = None
    stem_pool_pad: str = "-inf"
    relu_before_add: bool = False
    head_pool: int = 0
    naming: str = "torchvision"
    preprocessing: str = "imagenet"
    num_classes: int = 1000
    include_top: bool = True
    pooling: str | None = "avg"
    drop_rate: float = 0.0
    head: tuple[tuple, ...] = ()
    output_stride: int | None = None
    zero_init_residual: bool = False
    features_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "head", _head_tuple(self.head))
        if self.features_only:
            # A feature extractor has no classifier; say so once here for every builder.
            object.__setattr__(self, "include_top", False)
        if self.output_stride is None:
            object.__setattr__(self, "output_stride", self.native_output_stride)
        if self.stem_norm is None:
            object.__setattr__(self, "stem_norm", not self.preact)
        _validate(self)

    # Derived facts every builder needs; kept here so no builder recomputes them differently.

    @property
    def kind(self) -> BlockKind:
        return BLOCK_KINDS[self.block]

    @property
    def expansion(self) -> int:
        return self.kind.expansion

    @property
    def preact(self) -> bool:
        return self.kind.preact

    def inner_width(self, planes: int) -> int:
        """Channels of a bottleneck's 3x3 conv in a stage of `planes` (ResNeXt's groups times
        width per group, scaled as torchvision does); a basic block's convs have `planes`."""
        if self.kind.convs == 2:
            return planes
        return int(planes * (self.width_per_group / 64.0)) * self.groups

    def attention_width(self, width: int) -> int:
        """Channels of split attention's squeeze (fc1) for a 3x3 conv of `width` channels, as in
        the official ResNeSt repository (reduction 4, at least 32)."""
        return max(width * self.radix // 4, 32)

    @property
    def stem_channels(self) -> int:
        return 2 * self.stem_width if self.stem == "deep" else self.stem_width

    @property
    def stem_stride(self) -> int:
        return 1 if self.stem == "cifar" else 4

    @property
    def fixed_input(self) -> bool:
        """The classifier reads a fixed-size map (head_pool), so the model takes input_size only."""
        return bool(self.head_pool) and self.include_top

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return (1,) + (2,) * (len(self.layers) - 1)

    @property
    def native_output_stride(self) -> int:
        stride = self.stem_stride
        for s in self.stage_strides:
            stride *= s
        return stride

    @property
    def num_features(self) -> int:
        """Channels of the last stage, i.e. the classifier's input."""
        return self.widths[-1] * self.expansion

    @property
    def depth(self) -> int:
        """Layers with weights along the main path, as in the variant names (resnet50: 50)."""
        return self.kind.convs * sum(self.layers) + 2

    def replace(self, **changes) -> "ResNetSpec":
        """A copy with some fields changed, validated again. Unknown fields are an error."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(unknown)} for {self.name}; "
                f"expected some of: {', '.join(sorted(known - {'name', 'family'}))}"
            )
        if "output_stride" not in changes and self.output_stride == self.native_output_stride:
            # Keep "native" native when the change moves it (e.g. a different stem).
            changes["output_stride"] = None
        if "stem_norm" not in changes and self.stem_norm == (not self.preact):
            changes["stem_norm"] = None  # likewise "unless pre-activation" for another block
        return dataclasses.replace(self, **changes)

    def to_config(self) -> dict:
        """The fields as plain JSON values (tuples become lists): what files record."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_config(cls, config: dict) -> "ResNetSpec":
        return cls(**config)  # __post_init__ turns lists back into tuples and validates


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _head_tuple(head):
    """The head as a tuple of tuples, whatever sequences it came in (a config's lists); a bare
    name stands for a layer without arguments ("relu"). Anything else is left for _validate."""
    if isinstance(head, (list, tuple)):
        return tuple(tuple(layer) if isinstance(layer, (list, tuple)) else (layer,) if isinstance(layer, str)
                     else layer for layer in head)
    return head


def _validate(s: ResNetSpec) -> None:
    def check(ok: bool, field: str, message: str) -> None:
        if not ok:
            raise SpecError(field, message)

    check(s.block in BLOCKS, "block", f"got {s.block!r}, expected one of {BLOCKS}")
    check(s.stem in STEMS, "stem", f"got {s.stem!r}, expected one of {STEMS}")
    check(s.shortcut in SHORTCUTS, "shortcut", f"got {s.shortcut!r}, expected one of {SHORTCUTS}")
    check(
        len(s.layers) >= 1 and all(isinstance(n, int) and n >= 1 for n in s.layers),
        "layers",
        f"got {s.layers}, expected one positive block count per stage",
    )
    check(
        len(s.widths) == len(s.layers) and all(isinstance(w, int) and w >= 1 for w in s.widths),
        "widths",
        f"got {s.widths}, expected {len(s.layers)} positive widths (one per stage in layers)",
    )
    for field, allowed in (("conv_bias", CONV_BIASES), ("stride_conv", STRIDE_CONVS), ("stride_block", STRIDE_BLOCKS),
                           ("stem_pool_pad", STEM_POOL_PADS), ("naming", NAMINGS), ("preprocessing", PREPROCESSINGS)):
        value = getattr(s, field)
        check(value in allowed, field, f"got {value!r}, expected one of {allowed}")
    check(isinstance(s.bn_eps, (int, float)) and s.bn_eps > 0, "bn_eps", f"got {s.bn_eps!r}, expected a positive number")
    check(isinstance(s.head_pool, int) and s.head_pool >= 0, "head_pool",
          f"got {s.head_pool!r}, expected 0 (global pooling) or a pool size >= 1")
    check(s.stem_width >= 1, "stem_width", f"got {s.stem_width}, expected a positive width")
    check(s.in_channels >= 1, "in_channels", f"got {s.in_channels}, expected >= 1")
    check(s.input_size >= 1, "input_size", f"got {s.input_size}, expected >= 1")

    bottleneck = s.kind.convs == 3
    check(
        bottleneck or s.groups == 1,
        "groups",
        f"got {s.groups} for a {s.block} block; grouped convolutions need a bottleneck block",
    )
    check(
        bottleneck or s.width_per_group == 64,
        "width_per_group",
        f"got {s.width_per_group} for a {s.block} block; only bottleneck blocks have a "
        "configurable inner width (64 for basic blocks)",
    )
    check(s.groups >= 1, "groups", f"got {s.groups}, expected >= 1")
    check(s.width_per_group >= 1, "width_per_group", f"got {s.width_per_group}, expected >= 1")
    if s.kind.split_attention:
        check(s.radix >= 1, "radix", f"got {s.radix}; a splat_bottleneck needs radix >= 1")
    else:
        check(s.radix == 0, "radix", f"got {s.radix} for a {s.block} block; only splat_bottleneck splits")
        check(not s.avd, "avd", f"avd downsampling is only defined for splat_bottleneck, not {s.block}")
    check(s.avd or not s.avd_first, "avd_first", "avd_first=True needs avd=True")
    _validate_widths(s, check)
    if s.shortcut == "zero_pad":
        check(
            s.kind == BLOCK_KINDS["basic"],
            "shortcut",
            f"option A zero padding needs basic blocks (got {s.block})",
        )
        chans = (s.stem_channels,) + s.widths
        check(
            all(b in (a, 2 * a) for a, b in zip(chans, chans[1:])),
            "shortcut",
            f"option A zero padding needs each stage to keep or double the channels, got {chans}",
        )
    if s.preact:
        check(s.shortcut in ("projection", "subsample"), "shortcut",
              f"got {s.shortcut!r}; pre-activation blocks use projection (or subsample) shortcuts")
        check(not s.relu_before_add, "relu_before_add", "pre-activation blocks have no ReLU around the sum")
    check(s.stride_conv == "3x3" or bottleneck, "stride_conv",
          f"got {s.stride_conv!r} for a {s.block} block; only a bottleneck has a 1x1 conv to stride")

    check(s.pooling in POOLINGS, "pooling", f"got {s.pooling!r}, expected one of {POOLINGS}")
    if s.include_top:
        check(s.pooling is not None, "pooling", "include_top=True needs a global pooling ('avg' or 'max')")
        check(
            isinstance(s.num_classes, int) and s.num_classes >= 1,
            "num_classes",
            f"got {s.num_classes!r}, expected a positive integer (or include_top=False)",
        )
    check(0.0 <= s.drop_rate < 1.0, "drop_rate", f"got {s.drop_rate}, expected 0 <= drop_rate < 1")
    _validate_head(s.head, check)

    native = s.native_output_stride
    if s.stride_block == "last":
        check(s.output_stride == native, "output_stride",
              f"got {s.output_stride}; dilation needs the stride on the first block of a stage "
              f"(stride_block='first'), expected {native}")
    # Dilation may replace the strides of all but the first stride-2 stage.
    allowed = tuple(native // 2**k for k in range(min(2, len(s.layers) - 1) + 1))
    check(
        s.output_stride in allowed,
        "output_stride",
        f"got {s.output_stride}, expected one of {allowed} for {s.name}",
    )


def _validate_head(head, check) -> None:
    layers = "('linear', features), ('relu',) or ('dropout', rate)"
    expected = f"expected one of {layers}"
    check(isinstance(head, tuple), "head", f"got {head!r}, expected a sequence of layers, each {layers}")
    for i, layer in enumerate(head):
        kind, args = (layer[0], layer[1:]) if isinstance(layer, tuple) and layer else (None, ())
        check(kind in HEAD_LAYERS, "head", f"layer {i} is {layer!r}; {expected}")
        if kind == "linear":
            ok = len(args) == 1 and isinstance(args[0], int) and not isinstance(args[0], bool) and args[0] >= 1
            check(ok, "head", f"layer {i} is {layer!r}; expected ('linear', features) with features >= 1")
        elif kind == "dropout":
            ok = len(args) == 1 and isinstance(args[0], (int, float)) and not isinstance(args[0], bool)
            check(ok and 0.0 <= args[0] < 1.0, "head", f"layer {i} is {layer!r}; expected ('dropout', rate) "
                  "with 0 <= rate < 1")
        else:
            check(not args, "head", f"layer {i} is {layer!r}; a ReLU takes no arguments: ('relu',)")


def _validate_widths(s: ResNetSpec, check) -> None:
    """What the plan derives from the widths: no layer may be empty, and grouped convolutions
    must split their channels evenly (no builder can realise them otherwise)."""
    for i, planes in enumerate(s.widths):
        width = s.inner_width(planes)
        check(
            width >= 1,
            "widths",
            f"stage {i + 1} would have an empty 3x3 conv: int({planes} * {s.width_per_group} / 64) * "
            f"{s.groups} groups = 0 channels; expected widths[{i}] * width_per_group >= 64",
        )
        if s.kind.split_attention:
            splits = s.groups * s.radix
            check(
                width % splits == 0,
                "radix",
                f"stage {i + 1}'s 3x3 conv has {width} channels, which do not split into groups * radix = "
                f"{splits} equal groups",
            )
            inter = s.attention_width(width)
            check(
                inter % s.groups == 0,
                "groups",
                f"stage {i + 1}'s split attention squeezes to {inter} channels, which do not split into "
                f"{s.groups} groups",
            )
