"""Framework-free description of every ResNet variant: specs, the registry and the layer plan.

    >>> import resnet_spec
    >>> spec = resnet_spec.get("resnet50", num_classes=10)
    >>> resnet_spec.count_parameters(spec).params
    23528522

Standard library only: both builders and the parity package depend on this, never the reverse.
"""

from .cost import Counts, count_macs, count_parameters, output_size
from .plan import (
    BN_EPS,
    BN_MOMENTUM,
    BatchNorm,
    Block,
    Conv,
    Linear,
    Plan,
    Pool,
    ZeroPadShortcut,
    foldable_pairs,
    plan,
)
from .registry import FAMILIES, UnknownArchitecture, builders, get, names, resolve
from .spec import BLOCKS, POOLINGS, SHORTCUTS, STEMS, ResNetSpec, SpecError

__all__ = [
    "BLOCKS", "BN_EPS", "BN_MOMENTUM", "BatchNorm", "Block", "Conv", "Counts", "FAMILIES", "Linear",
    "POOLINGS", "Plan", "Pool", "ResNetSpec", "SHORTCUTS", "STEMS", "SpecError", "UnknownArchitecture",
    "ZeroPadShortcut", "builders", "count_macs", "count_parameters", "foldable_pairs", "get", "names", "output_size", "plan", "resolve",
]
