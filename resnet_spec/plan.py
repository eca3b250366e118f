"""The layer plan: every step of a network, named and in forward order, derived from a ResNetSpec.

This is the single source of structure: layers and their hyper-parameters, where each ReLU
sits, what each block's shortcut reads, and the names. Both builders create exactly the steps
listed here under exactly these names (torchvision's and the official ResNeSt repository's
state_dict names), and the parity package maps weights by these names.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from dataclasses import dataclass

from .geometry import output_size, sequence_output_size
from .spec import ResNetSpec, SpecError
from .steps import (
    BN_COUNTER,
    WEIGHTED,
    BatchNorm,
    Block,
    Conv,
    Dropout,
    Flatten,
    GlobalPool,
    Linear,
    Pool,
    ReLU,
    SplitAttention,
    Step,
    Weighted,
    ZeroPadShortcut,
    leaves,
)


@dataclass(frozen=True)
class Plan:
    spec: ResNetSpec
    stem: tuple[Step, ...]  # forward order
    stages: tuple[tuple[Block, ...], ...]
    final: tuple[Step, ...]  # on the last stage's output, still part of the features (pre-activation)
    head: tuple[Step, ...]  # global pooling, dropout, classifier

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The module holding each stage's blocks ("layer1"; the notebook's "block2")."""
        return tuple(stage[0].name.rpartition(".")[0] for stage in self.stages)

    @property
    def classifier(self) -> Linear | None:
        """The last Linear, whose output is the logits (None without a classifier)."""
        return next((s for s in reversed(self.head) if isinstance(s, Linear)), None)

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
            for block in stage:
                total *= block.stride
            strides.append(total)
        return tuple(strides)

    def all_layers(self) -> tuple[Step, ...]:
        """Every step in forward order (PyTorch's state_dict order), the steps of a
        split-attention conv in place of it."""
        seqs = [self.stem, *(seq for b in self.blocks for seq in b.sequences), self.final, self.head]
        return tuple(step for seq in seqs for step in leaves(seq))

    def weighted_layers(self) -> tuple[Weighted, ...]:
        return tuple(layer for layer in self.all_layers() if isinstance(layer, WEIGHTED))

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every key of the network's PyTorch state_dict (BatchNorm counters aside) and its
        shape, in resnet_torch's order."""
        return {
            f"{layer.name}.{suffix}": shape
            for layer in self.weighted_layers()
            for suffix, shape in layer.tensor_shapes.items()
        }

    def counter_keys(self) -> tuple[str, ...]:
        """The state_dict keys of PyTorch's BatchNorm step counters (BN_COUNTER), which hold no
        weights and have no Keras counterpart."""
        return tuple(f"{layer.name}.{BN_COUNTER}" for layer in self.weighted_layers() if isinstance(layer, BatchNorm))

    def taps(self) -> "OrderedDict[str, str]":
        """The points both frameworks are observed at, in forward order, and their kinds: "stem"
        (the input of layer1), every block ("layer1.0"), every stage ("layer1": its last block,
        before a pre-activation network's final BatchNorm) and, unless the model returns its
        feature maps, "output" (what it returns)."""
        taps = OrderedDict(stem="stem")
        for stage_name, stage in zip(self.stage_names, self.stages):
            taps.update((b.name, "block") for b in stage)
            taps[stage_name] = "stage"
        if not self.spec.features_only:
            taps["output"] = "output"
        return taps


def _notebook(spec: ResNetSpec) -> bool:
    return spec.naming == "notebook"


def _block_name(spec: ResNetSpec, stage: int, index: int) -> str:
    """torchvision's "layer1.0"; the notebook's nn.Sequential per stage, "block2" to "block5",
    whose first also holds the stem's pool at index 0."""
    if _notebook(spec):
        return f"block{stage + 2}.{index + (stage == 0 and spec.stem != 'cifar')}"
    return f"layer{stage + 1}.{index}"


def _stem(spec: ResNetSpec) -> tuple[Step, ...]:
    c_in, w = spec.in_channels, spec.stem_width
    conv = "block1" if _notebook(spec) else "conv1"
    if spec.stem == "cifar":
        steps: list[Step] = [Conv(conv, c_in, w, 3)]
    elif spec.stem in ("classic", "unpadded"):
        steps = [Conv(conv, c_in, w, 7, stride=2, unpadded=spec.stem == "unpadded")]
    else:  # deep: named as nn.Sequential(conv, bn, relu, conv, bn, relu, conv) numbers its children
        steps = [
            Conv("conv1.0", c_in, w, 3, stride=2),
            _bn(spec, "conv1.1", w),
            ReLU("conv1.2"),
            Conv("conv1.3", w, w, 3),
            _bn(spec, "conv1.4", w),
            ReLU("conv1.5"),
            Conv("conv1.6", w, 2 * w, 3),
        ]
    # Pre-activation networks normalise at the start of each block, not after the stem.
    if spec.stem_norm:
        steps += [_bn(spec, "bn1", spec.stem_channels), ReLU("relu")]
    if spec.stem != "cifar":
        pool = f"{_block_name(spec, 0, -1)}" if _notebook(spec) else "maxpool"
        padding = 0 if spec.stem == "unpadded" else 1
        steps.append(Pool(pool, "max", 3, 2, padding=padding, zero_pad=spec.stem_pool_pad == "zeros"))
    return _biased(spec, steps)


def _bn(spec: ResNetSpec, name: str, channels: int) -> BatchNorm:
    return BatchNorm(name, channels, eps=spec.bn_eps)


def _biased(spec: ResNetSpec, steps) -> tuple[Step, ...]:
    """`steps` with a bias on the convs spec.conv_bias gives one: all, or those not followed by
    a BatchNorm (whose shift would make a bias redundant)."""
    steps = tuple(steps)
    if spec.conv_bias == "none":
        return steps
    out = []
    for i, step in enumerate(steps):
        normalized = i + 1 < len(steps) and isinstance(steps[i + 1], BatchNorm)
        if isinstance(step, Conv) and (spec.conv_bias == "all" or not normalized):
            step = dataclasses.replace(step, bias=True)
        out.append(step)
    return tuple(out)


def _shortcut(spec: ResNetSpec, name: str, c_in: int, c_out: int, stride: int) -> tuple[Step, ...]:
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
            _bn(spec, f"{d}.2", c_out),
        )
    if spec.shortcut == "subsample" and c_in == c_out:  # a 1x1 max pool: every stride-th pixel
        return (Pool(d, "max", 1, stride),)
    if spec.shortcut == "conv":  # one conv without BatchNorm; the notebook calls it conv3
        return (Conv(f"{name}.conv3" if _notebook(spec) else f"{d}.0", c_in, c_out, 1, stride=stride),)
    if spec.preact:  # the projection sees the already normalised input
        return (Conv(f"{d}.0", c_in, c_out, 1, stride=stride),)
    return (Conv(f"{d}.0", c_in, c_out, 1, stride=stride), _bn(spec, f"{d}.1", c_out))


def _split_attention(spec, n: str, width: int, stride: int, dilation: int) -> SplitAttention:
    """conv2 of a ResNeSt bottleneck, named as the official SplAtConv2d."""
    radix, card = spec.radix, spec.groups
    inter = spec.attention_width(width)
    s = n + "conv2."
    return SplitAttention(
        name=n + "conv2",
        radix=radix,
        cardinality=card,
        splits=(
            Conv(s + "conv", width, width * radix, 3, stride, dilation, card * radix),
            _bn(spec, s + "bn0", width * radix),
            ReLU(s + "relu0"),
        ),
        attention=(
            Conv(s + "fc1", width, inter, 1, groups=card, bias=True),
            _bn(spec, s + "bn1", inter),
            ReLU(s + "relu1"),
            Conv(s + "fc2", inter, width * radix, 1, groups=card, bias=True),
        ),
    )


def _block(spec, name, c_in, planes, stride, dilation, first_dilation, is_first) -> Block:
    kind = spec.kind
    c_out = planes * kind.expansion
    n = name + "."
    width = spec.inner_width(planes)
    if kind.convs == 2:
        convs = [
            Conv(n + "conv1", c_in, width, 3, stride=stride, dilation=first_dilation),
            Conv(n + "conv2", width, width, 3, dilation=dilation),
        ]
    else:  # ResNet v1.5 strides on the 3x3 conv, which may be grouped (ResNeXt); v1 on the first 1x1
        s1, s3 = (stride, 1) if spec.stride_conv == "1x1" else (1, stride)
        convs = [
            Conv(n + "conv1", c_in, width, 1, stride=s1),
            Conv(n + "conv2", width, width, 3, s3, first_dilation, groups=spec.groups),
            Conv(n + "conv3", width, c_out, 1),
        ]
    shortcut = _biased(spec, _shortcut(spec, name, c_in, c_out, stride))
    shortcut_from, after_add = None, ()
    branch: list[Step] = []
    if kind.preact:  # BN-ReLU-conv units; a projection reads the first normalised input
        for i, conv in enumerate(convs, 1):
            branch += [_bn(spec, f"{n}bn{i}", conv.in_channels), ReLU(f"{n}relu{i}"), conv]
        shortcut_from = f"{n}relu1" if shortcut and isinstance(shortcut[0], Conv) else None
    else:  # conv-BN-ReLU units, the last ReLU after the sum (and, with relu_before_add, also before)
        for i, conv in enumerate(convs, 1):
            branch += [conv, _bn(spec, f"{n}bn{i}", conv.out_channels), ReLU(f"{n}relu{i}")]
        if not spec.relu_before_add:
            branch.pop()
        after_add = (ReLU(n + "relu"),)
    if kind.split_attention:
        # conv2, bn2 and its ReLU become one split-attention conv; a strided block (and the first
        # of each later stage) downsamples with a 3x3 average pool ("avd") before or after it.
        avd = spec.avd and (stride > 1 or is_first)
        i = branch.index(convs[1])
        attention = _split_attention(spec, n, width, 1 if avd else stride, first_dilation)
        branch[i : i + 3] = [attention]
        if avd:
            branch.insert(i if spec.avd_first else i + 1, Pool(n + "avd_layer", "avg", 3, stride, padding=1))
    if spec.zero_init_residual:
        branch = _zero_init_last(branch)
    return Block(name, c_in, c_out, stride, _biased(spec, branch), shortcut, shortcut_from, after_add)


def _zero_init_last(branch: list[Step]) -> list[Step]:
    """The branch with its last weighted layer starting at zero, so the block starts as its
    shortcut (zero_init_residual)."""
    i = max(k for k, step in enumerate(branch) if isinstance(step, (Conv, BatchNorm)))
    return branch[:i] + [dataclasses.replace(branch[i], zero_init=True)] + branch[i + 1 :]


def _head(spec: ResNetSpec, channels: int) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """(final, head): pre-activation's last BatchNorm and ReLU; then pooling, dropout, classifier."""
    final = (_bn(spec, "bn_final", channels), ReLU("relu_final")) if spec.preact else ()
    head: list[Step] = []
    if not spec.features_only:
        if spec.fixed_input:  # the notebook's last stage ends in block5.2, a 3x3 average pool
            k = spec.head_pool
            name = _block_name(spec, len(spec.layers) - 1, spec.layers[-1]) if _notebook(spec) else "head_pool"
            head += [Pool(name, "avg", k, k), Flatten("flatten", channels)]
        elif spec.pooling is not None:
            head.append(GlobalPool("global_pool", spec.pooling))
        if spec.drop_rate > 0:
            head.append(Dropout("dropout", spec.drop_rate))
        if spec.include_top:
            head += _classifier(spec, channels)
    return final, tuple(head)


CLASSIFIER = "fc"  # torchvision's name for the classifier, and for the nn.Sequential of a longer head


def classifier_root(spec: ResNetSpec) -> str:
    """The classifier's module name in the variant's naming: "fc" (the notebook's "classifier");
    with spec.head, the container of the head's layers."""
    return "classifier" if _notebook(spec) else CLASSIFIER


def _classifier(spec: ResNetSpec, channels: int) -> list[Step]:
    """The Linear "fc" (the notebook's "classifier"), or with spec.head the head's layers and
    then that Linear, numbered fc.0, fc.1, ... as nn.Sequential numbers its children (a
    fine-tuned `model.fc`)."""
    root = classifier_root(spec)
    if not spec.head:
        return [Linear(root, channels, spec.num_classes)]
    steps: list[Step] = []
    for i, (kind, *args) in enumerate(spec.head):
        name = f"{root}.{i}"
        if kind == "linear":
            steps.append(Linear(name, channels, args[0]))
            channels = args[0]
        elif kind == "dropout":
            steps.append(Dropout(name, args[0]))
        else:
            steps.append(ReLU(name))
    return steps + [Linear(f"{root}.{len(spec.head)}", channels, spec.num_classes)]


@functools.lru_cache(maxsize=256)
def plan(spec: ResNetSpec) -> Plan:
    """Every step of the network described by `spec`, named and in order. Raises SpecError
    (field "input_size") when the native input size would shrink to nothing."""
    stages = []
    c_in = spec.stem_channels
    net_stride, dilation = spec.stem_stride, 1
    strides = spec.stage_strides
    for i, (blocks, planes, stride) in enumerate(zip(spec.layers, spec.widths, strides)):
        prev_dilation = dilation
        if net_stride >= spec.output_stride and stride > 1:
            dilation, stride = dilation * stride, 1  # keep the resolution, widen the receptive field
        else:
            net_stride *= stride
        stage = []
        for j in range(blocks):
            first = j == 0
            if spec.stride_block == "last":  # the next stage's stride, on this stage's last block
                block_stride = strides[i + 1] if j == blocks - 1 and i + 1 < len(strides) else 1
            else:
                block_stride = stride if first else 1
            stage.append(
                _block(
                    spec,
                    _block_name(spec, i, j),
                    c_in,
                    planes,
                    block_stride,
                    dilation,
                    prev_dilation if first else dilation,
                    is_first=first and i > 0,
                )
            )
            c_in = planes * spec.expansion
        stages.append(tuple(stage))
    final, head = _head(spec, c_in)
    p = Plan(spec=spec, stem=_stem(spec), stages=tuple(stages), final=final, head=head)
    _check_geometry(p)
    return p


def _check_geometry(p: Plan) -> None:
    """Every map of a native-size input keeps at least one pixel, and each block's branch and
    shortcut meet at the same size."""
    size = (p.spec.input_size,) * 2
    for step in p.stem:
        size = _checked(p.spec, step, size)
    for block in p.blocks:
        branch = size
        for step in block.branch:
            branch = _checked(p.spec, step, branch)
        shortcut = sequence_output_size(block.shortcut, size)
        if shortcut != branch:
            raise SpecError("input_size", f"{block.name}'s branch gives {branch} but its shortcut {shortcut} "
                            f"for {p.spec.input_size}x{p.spec.input_size} inputs")
        size = branch
    for step in p.final + p.head:
        if isinstance(step, Flatten) and size != (1, 1):
            raise SpecError("head_pool", f"a {p.spec.head_pool}x{p.spec.head_pool} pool leaves {size[0]}x{size[1]} of "
                            f"a {p.spec.input_size}x{p.spec.input_size} input's last map; expected 1x1 (another "
                            "head_pool or input_size)")
        size = _checked(p.spec, step, size)


def _checked(spec: ResNetSpec, step: Step, size: tuple[int, int]) -> tuple[int, int]:
    out = output_size(step, size)
    if min(out) < 1:
        raise SpecError("input_size", f"{spec.input_size}x{spec.input_size} inputs shrink to nothing at "
                        f"{step.name} (input {size[0]}x{size[1]}); expected a larger input_size")
    return out


def foldable_pairs(p: Plan) -> tuple[tuple[Conv, BatchNorm], ...]:
    """(conv, BatchNorm) pairs in which the BatchNorm directly follows the conv and is the only
    reader of its output: at inference the BatchNorm folds into the conv's weight and bias.
    A BatchNorm at the start of a sequence (pre-activation) has no conv of its own to fold into."""
    sequences = [p.stem, p.final]
    for b in p.blocks:
        sequences += [b.branch, b.shortcut, b.after_add]
        sequences += [seq for s in b.branch if isinstance(s, SplitAttention) for seq in (s.splits, s.attention)]
    shared = {b.shortcut_from for b in p.blocks}  # outputs that a shortcut reads too
    return tuple(
        (a, b)
        for seq in sequences
        for a, b in zip(seq, seq[1:])
        if isinstance(a, Conv) and isinstance(b, BatchNorm) and a.name not in shared
    )
