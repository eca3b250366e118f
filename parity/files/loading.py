"""Any source a user names, read into the models it holds: the one loader behind convert,
predict and the exports.

A source is a PyTorch-side file (see checkpoints), a Keras-side file of a resnet_tf model (see
keras_io) or of keras.applications (see keras_applications; read as tensors, like a PyTorch
file), or the name of a registered variant (its weights seeded random, or PyTorch's initialisation). Files
are read safely and their architecture is inferred (see identify) unless `arch` is given.

Importing this module loads torch (for the state_dicts), never TensorFlow: Keras loads only
when a Keras model is asked for or a Keras file is read.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch

import resnet_torch
import resnet_spec as rs

from ..core import porting, testing
from ..core.frameworks import FRAMEWORKS
from . import checkpoints, keras_applications, keras_io
from .atomic import full_suffix
from .errors import CheckpointError
from .identify import ArchitectureError, describe_head, identify

TORCH_SIDE = checkpoints.TORCH_SUFFIXES + (checkpoints.SAFETENSORS_SUFFIX,)
KERAS_SIDE = keras_io.KERAS_SUFFIXES + (keras_applications.LEGACY_SUFFIX,)
WEIGHTS = ("random", "initial")  # of a variant named as the source


def side(path: str | os.PathLike) -> str:
    """"torch" or "keras" by the file name, or a CheckpointError naming the suffixes known."""
    suffix = full_suffix(path)
    if suffix in TORCH_SIDE:
        return "torch"
    if suffix in KERAS_SIDE:
        return "keras"
    raise CheckpointError(
        f"{path}: unsupported file type {suffix or '(no suffix)'!r}; PyTorch: {', '.join(TORCH_SIDE)}; "
        f"Keras: {', '.join(KERAS_SIDE)}"
    )


def read_torch_checkpoint(path, arch=None, num_classes=None, key=None, prefix=None):
    """(state_dict under our names, spec, notes) from a PyTorch-side file; see load_checkpoint."""
    obj = checkpoints.read_torch_file(path)
    state_dict, found, others = checkpoints.find_state_dict(obj, key, source=str(path))
    state_dict, notes = checkpoints.normalize_keys(state_dict, prefix, source=str(path))
    also = f" (other entries hold tensors too: {', '.join(map(repr, others))}; --key picks one)" if others else ""
    if found:
        notes.insert(0, f"state_dict nested under {found!r}{also}")
    try:
        spec = identify({k: v.shape for k, v in state_dict.items()}, arch, num_classes, source=str(path))
    except ArchitectureError as err:
        if also:  # another entry may be the network
            raise type(err)(f"{err} It was read from {found!r}{also}.") from None
        raise
    if spec.include_top and spec.head:
        notes.append(describe_head(spec))
    return state_dict, spec, notes


def tensor_source(path: str | os.PathLike) -> bool:
    """Whether a file is read as tensors under our names (read_checkpoint): a PyTorch-side file
    or a keras.applications one; otherwise it holds a resnet_tf model (keras_io)."""
    return side(path) == "torch" or keras_applications.holds(path)


def read_checkpoint(path, arch=None, num_classes=None, key=None, prefix=None):
    """(state_dict under our names, spec, notes) from a file that tensor_source accepts."""
    if side(path) == "keras":
        return keras_applications.read(path, arch, num_classes)
    return read_torch_checkpoint(path, arch, num_classes, key, prefix)


def keras_state_dict(keras_model, record: dict) -> "OrderedDict[str, torch.Tensor]":
    """The PyTorch state_dict of a Keras model read from a file, with the BatchNorm counters its
    record kept (else porting.NUM_BATCHES_TRACKED)."""
    state_dict = porting.keras_to_state_dict(keras_model)
    for k, value in record.get(rs.BN_COUNTER, {}).items():
        if k in state_dict:
            state_dict[k] = torch.tensor(value, dtype=torch.long)
    return state_dict


def load_checkpoint(path, arch: str | None = None, num_classes: int | None = None, key: str | None = None,
                    prefix: str | None = None):
    """(state_dict, architecture name) from any supported file, read safely.

    The state_dict has our (torchvision's) key names, whatever the file's nesting, prefix or
    classifier name, and fits `resnet_torch.create_model(name, num_classes)` with strict=True
    (num_classes = state_dict["fc.weight"].shape[0]; a fine-tuned nn.Sequential head needs the
    spec's `head` too, see `read_torch_checkpoint`). The name is inferred from the tensors
    unless `arch` is given (then checked). `key` picks a nested entry ("state_dict_ema",
    "ema/model") where several could be the weights; `prefix` ("backbone.") takes the tensors
    under it, "" keeps every key as it is (default: strip a prefix all keys share).
    Keras files give the state_dict of their weights (num_batches_tracked as recorded by
    parity, else 0); keras.applications files are identified from their layer names and shapes."""
    if not tensor_source(path):
        model, record = keras_io.load(path, arch, num_classes)
        return keras_state_dict(model, record), model.spec.name
    state_dict, spec, _ = read_checkpoint(path, arch, num_classes, key, prefix)
    return state_dict, spec.name


def torch_model(spec: rs.ResNetSpec, state_dict) -> "torch.nn.Module":
    """The model holding the state_dict's own tensors (float32), in eval mode, built without
    allocating or initialising anything (porting.torch_model_holding). BatchNorm counters a file
    lacks start at porting.NUM_BATCHES_TRACKED."""
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    for k in rs.plan(spec).counter_keys():
        tensors.setdefault(k, torch.tensor(porting.NUM_BATCHES_TRACKED, dtype=torch.long))
    return porting.torch_model_holding(spec, tensors).eval()


def load_models(source, frameworks=FRAMEWORKS, arch: str | None = None, num_classes: int | None = None,
                key: str | None = None, weights: str = "random", seed: int = 0, prefix: str | None = None) -> dict:
    """framework -> model in inference mode holding the same weights, for each of `frameworks`.

    `source`: a checkpoint or Keras file (architecture inferred, or checked against `arch`;
    `key` picks a nested entry, `prefix` the tensors under a prefix), or a variant name, whose weights are then
    parity.testing.randomize_torch's (weights="random", seeded) or PyTorch's initialisation
    (weights="initial", seeded too)."""
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown or not frameworks:
        raise ValueError(f"frameworks: got {tuple(frameworks)}, expected some of {FRAMEWORKS}")
    if weights not in WEIGHTS:
        raise ValueError(f"weights: got {weights!r}, expected one of {WEIGHTS}")
    path = Path(source)
    models = {}
    if not path.exists() and str(source) in rs.names():
        with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's generator
            torch.manual_seed(seed)
            models["torch"] = resnet_torch.create_model(str(source), num_classes).eval()
        if weights == "random":
            testing.randomize_torch(models["torch"], seed)
    elif not path.exists() and not (path.suffix or os.sep in str(source)):
        try:
            rs.get(str(source))
        except rs.UnknownArchitecture as err:
            raise CheckpointError(f"{source} is neither a file nor a known architecture ({err})") from None
    elif not tensor_source(path):
        models["keras"], record = keras_io.load(path, arch, num_classes)
        models["torch"] = torch_model(models["keras"].spec, keras_state_dict(models["keras"], record))
    else:
        state_dict, spec, _ = read_checkpoint(path, arch, num_classes, key, prefix)
        models["torch"] = torch_model(spec, state_dict)
    if "keras" in frameworks and "keras" not in models:
        models["keras"] = porting.torch_to_keras(models["torch"])
    return {f: models[f] for f in frameworks}
