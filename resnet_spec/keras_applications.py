"""The names keras.applications gives the layers of its ResNets, derived from our plan.

keras.applications names a layer by where it sits: `conv1_conv` and `conv1_bn` in the stem,
`conv{stage + 2}_block{block + 1}_{k}_conv` for the k-th conv of a block's branch and `_{k}_bn`
for the BatchNorm after it (v2: the BatchNorm before the first conv is `_preact_bn`), `_0_conv`
and `_0_bn` on the shortcut, `post_bn` after the last stage (v2) and `predictions` for the
classifier. Walking the plan in forward order gives every weighted layer its name by that rule,
so no table lists them.
"""

from __future__ import annotations

from .plan import plan
from .spec import ResNetSpec
from .steps import BatchNorm, Conv, leaves

FAMILY = "keras_applications"
PREDICTIONS = "predictions"  # keras.applications' name for its classifier


def keras_applications_names(spec: ResNetSpec) -> dict[str, str]:
    """Every weighted layer's plan name, in forward order -> its keras.applications name.
    Raises ValueError for a spec that is not one of the keras.applications ResNets."""
    if spec.family != FAMILY:
        raise ValueError(f"{spec.name} is not a keras.applications network (family {spec.family!r}, "
                         f"expected {FAMILY!r})")
    p = plan(spec)
    names = _numbered(p.stem, "conv1_", first=None)
    for i, stage in enumerate(p.stages):
        for j, block in enumerate(stage):
            prefix = f"conv{i + 2}_block{j + 1}_"
            names.update(_numbered(block.branch, prefix, first=1))
            names.update(_numbered(block.shortcut, prefix, first=0))
    names.update({s.name: "post_bn" for s in p.final if isinstance(s, BatchNorm)})
    if p.classifier is not None:  # keras.applications' classifier is one Dense (no spec.head)
        names[p.classifier.name] = PREDICTIONS
    return names


def _numbered(steps, prefix: str, first: int | None) -> dict[str, str]:
    """Names in one sequence: convs numbered from `first` (None: the stem's one conv, unnumbered),
    each BatchNorm after the conv before it, or "preact" before any conv."""
    names, number = {}, None
    for step in leaves(steps):
        if isinstance(step, Conv):
            number = first if number is None else number + 1
            names[step.name] = f"{prefix}conv" if number is None else f"{prefix}{number}_conv"
        elif isinstance(step, BatchNorm):
            where = "preact" if number is None and first is not None else number
            names[step.name] = f"{prefix}bn" if where is None else f"{prefix}{where}_bn"
    return names
