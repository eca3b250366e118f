"""The plan walked as a Keras functional graph: one function applies a step, one a block.

Every layer of the plan comes out under the plan's name (through layers.keras_name, which only
the PyTorch backend changes). The parameter-free helpers that only Keras needs get names derived
from it ("<conv>_pad", "<block>.add", "<conv2>_gap", ...), so names stay unique and readable in
model.summary().
"""

from __future__ import annotations

import keras

import resnet_spec as rs

from .layers import RadixGap, SplitAttention, keras_name, make, pad_for


def apply(step: rs.Step, x):
    """`step` applied to `x`; a conv gets PyTorch's explicit padding in front of it."""
    if isinstance(step, rs.SplitAttention):
        splits = walk(step.splits, x)
        gap = RadixGap(step.radix, name=keras_name(f"{step.name}_gap"))(splits)
        logits = walk(step.attention, gap)
        return SplitAttention(step.radix, step.cardinality, name=output_name(step))([splits, logits])
    if isinstance(step, rs.Conv):
        pad = pad_for(step)
        if pad is not None:
            x = pad(x)
    return make(step)(x)


def walk(steps, x):
    for step in steps:
        x = apply(step, x)
    return x


def block(b: rs.Block, x):
    """The residual block `b`: branch and shortcut (on the input, or on the output of the
    branch step `b.shortcut_from`), their sum, then `b.after_add`."""
    out = shortcut = x
    for step in b.branch:
        out = apply(step, out)
        if step.name == b.shortcut_from:
            shortcut = out
    out = keras.layers.Add(name=keras_name(f"{b.name}.add"))([out, walk(b.shortcut, shortcut)])
    return walk(b.after_add, out)


def output_name(step: rs.Step | rs.Block) -> str:
    """The Keras layer whose output is the output of `step` (or of a whole block)."""
    if isinstance(step, rs.Block):
        return output_name(step.after_add[-1]) if step.after_add else keras_name(f"{step.name}.add")
    if isinstance(step, rs.SplitAttention):
        return keras_name(f"{step.name}_attention")
    return keras_name(step.name)
