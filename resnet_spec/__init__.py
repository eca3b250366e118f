"""Framework-free description of every ResNet variant: specs, the registry and the layer plan.

    >>> import resnet_spec
    >>> spec = resnet_spec.get("resnet50", num_classes=10)
    >>> resnet_spec.count_parameters(spec).params
    23528522

Standard library only: both builders and the parity package depend on this, never the reverse.
Modules, lowest first: preprocessing (each variant's normalisation, numbers only), spec (the dataclass and the table of block kinds), steps (the plan's
descriptors), geometry (output sizes), naming (Keras-side names), plan (a spec expanded into named steps), cost,
keras_applications (the names keras.applications gives the same layers), registry.
"""

from .cost import Counts, count_macs, count_parameters
from .keras_applications import keras_applications_names
from .geometry import output_length, output_size
from .naming import KERAS_BACKENDS, keras_name
from .plan import CLASSIFIER, Plan, classifier_root, foldable_pairs, plan
from .preprocessing import NORMALIZATIONS, Normalization
from .registry import FAMILIES, UnknownArchitecture, builders, get, names, resolve
from .spec import (
    BLOCK_KINDS,
    BLOCKS,
    CONV_BIASES,
    HEAD_LAYERS,
    NAMINGS,
    POOLINGS,
    PREPROCESSINGS,
    SHORTCUTS,
    STEMS,
    BlockKind,
    ResNetSpec,
    SpecError,
)
from .steps import (
    BN_COUNTER,
    BN_EPS,
    BN_MOMENTUM,
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

__all__ = [
    "BLOCKS", "BLOCK_KINDS", "BN_COUNTER", "BN_EPS", "BN_MOMENTUM", "BatchNorm", "Block", "BlockKind", "CLASSIFIER", "Conv",
    "CONV_BIASES", "Counts", "Dropout", "Flatten", "FAMILIES", "GlobalPool", "HEAD_LAYERS", "KERAS_BACKENDS", "Linear", "NAMINGS", "NORMALIZATIONS", "Normalization", "POOLINGS", "PREPROCESSINGS", "Plan", "Pool", "ReLU", "ResNetSpec", "SHORTCUTS",
    "STEMS", "SpecError", "SplitAttention", "Step", "UnknownArchitecture", "WEIGHTED", "Weighted", "ZeroPadShortcut",
    "builders", "classifier_root", "count_macs", "count_parameters", "foldable_pairs", "get", "keras_applications_names", "keras_name", "leaves", "names", "output_length",
    "output_size", "plan", "resolve",
]
