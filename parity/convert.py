"""Converting checkpoint files between the frameworks, with the architecture read from the file.

    >>> state_dict, name = parity.load_checkpoint("resnet20-12fca82f.th")   # "resnet20"
    >>> result = parity.convert_file("resnet20-12fca82f.th", "resnet20.keras")
    >>> print(result.report.table())

PyTorch side: .pth/.pt/.th/.bin/.ckpt and .safetensors (see parity.checkpoints for the layouts
read). Keras side: .keras and .weights.h5 (see parity.keras_io). Either side converts to the
other. Unless verify=False, the written file is read back and compared with the source on
random inputs by the parity contract before it takes its name: a file that breaks the
contract is never left at the destination.

PyTorch -> Keras writes the Keras file directly (parity.keras_archive), so that without
verification neither TensorFlow nor a model is loaded; verification reads the file with Keras.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import torch

import resnet_torch  # noqa: F401  (triton before TensorFlow, which only verification loads)
import resnet_spec as rs

from . import checkpoints, keras_archive, keras_io, porting
from .checkpoints import SAFETENSORS_SUFFIX, TORCH_SUFFIXES, CheckpointError
from .files import atomic_path, check_destination, full_suffix
from .identify import COUNTER, identify

if TYPE_CHECKING:
    from . import comparison  # imports Keras: loaded only to verify

TORCH_SIDE = TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,)
KERAS_SIDE = keras_io.KERAS_SUFFIXES
VERIFY_BATCH = 2


class VerificationError(Exception):
    """A written model breaks the parity contract against its source; the file was not kept."""

    def __init__(self, report: comparison.ParityReport, dst: Path, what: str = "the converted model"):
        self.report = report
        super().__init__(f"{dst} was not written: {what} diverges first at {report.first_divergence}")


@dataclass
class Conversion:
    src: Path
    dst: Path
    spec: rs.ResNetSpec
    inferred: bool  # the architecture was read from the tensors (no --arch)
    notes: list[str] = field(default_factory=list)  # what reading the source involved
    report: comparison.ParityReport | None = None  # None with verify=False


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


def verification_size(spec: rs.ResNetSpec) -> tuple[int, int]:
    """Odd and non-square: the sizes where padding and pooling mistakes show."""
    return (33, 31) if spec.input_size <= 64 else (75, 67)


def read_torch_checkpoint(path, arch=None, num_classes=None, key=None):
    """(state_dict under our names, spec, notes) from a PyTorch-side file; see load_checkpoint."""
    obj = checkpoints.read_torch_file(path)
    state_dict, found = checkpoints.find_state_dict(obj, key, source=str(path))
    state_dict, notes = checkpoints.normalize_keys(state_dict)
    if found:
        notes.insert(0, f"state_dict nested under {found!r}")
    spec = identify({k: v.shape for k, v in state_dict.items()}, arch, num_classes, source=str(path))
    return state_dict, spec, notes


def load_checkpoint(path, arch: str | None = None, num_classes: int | None = None, key: str | None = None):
    """(state_dict, architecture name) from any supported file, read safely.

    The state_dict has our (torchvision's) key names, whatever the file's nesting, prefix or
    classifier name, and fits `resnet_torch.create_model(name, num_classes)` with strict=True
    (num_classes = state_dict["fc.weight"].shape[0]). The name is inferred from the tensors
    unless `arch` is given (then checked). `key` picks a nested entry, e.g. "state_dict_ema".
    Keras files give the state_dict of their weights (num_batches_tracked as recorded by
    parity, else 0)."""
    if side(path) == "keras":
        model, record = keras_io.load(path, arch, num_classes)
        return _keras_state_dict(model, record), model.spec.name
    state_dict, spec, _ = read_torch_checkpoint(path, arch, num_classes, key)
    return state_dict, spec.name


def _keras_state_dict(keras_model, record: dict) -> "OrderedDict[str, torch.Tensor]":
    state_dict = porting.keras_to_state_dict(keras_model)
    for k, value in record.get("num_batches_tracked", {}).items():
        if k in state_dict:
            state_dict[k] = torch.tensor(value, dtype=torch.long)
    return state_dict


def _torch_model(spec: rs.ResNetSpec, state_dict) -> "torch.nn.Module":
    """The model holding the state_dict's own tensors (float32): built on the meta device, so
    no memory is allocated and nothing is initialised only to be overwritten."""
    with torch.device("meta"):
        model = resnet_torch.ResNet(spec)
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    for k in model.state_dict():
        if k.endswith(COUNTER) and k not in tensors:  # older checkpoints lack the counters
            tensors[k] = torch.tensor(porting.NUM_BATCHES_TRACKED, dtype=torch.long)
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()


def _verify(torch_model, keras_model, seed: int = 0) -> comparison.ParityReport:
    from . import comparison

    spec = torch_model.spec
    h, w = verification_size(spec)
    x = np.random.default_rng(seed).standard_normal((VERIFY_BATCH, spec.in_channels, h, w)).astype(np.float32)
    return comparison.compare(torch_model, keras_model, x)


def write_torch_file(state_dict, path: Path, spec: rs.ResNetSpec) -> None:
    if path.suffix == SAFETENSORS_SUFFIX:
        import json

        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state_dict.items()}, path,
                  metadata={"arch": spec.name, "spec": json.dumps(spec.to_config())})
    else:
        torch.save(state_dict, path)


def convert_file(
    src,
    dst,
    arch: str | None = None,
    num_classes: int | None = None,
    force: bool = False,
    verify: bool = True,
    key: str | None = None,
) -> Conversion:
    """Convert `src` (PyTorch side or Keras side) to `dst` (the other side), atomically.

    Raises CheckpointError (and subclasses) for unreadable, unsafe or unfitting inputs,
    files.OutputExistsError unless `force`, and VerificationError (with the report) when the
    written model breaks the parity contract; in every failure `dst` is left as it was."""
    src, dst = checkpoints.check_readable(src), Path(dst)
    src_side, dst_side = side(src), side(dst)
    if src_side == dst_side:
        raise CheckpointError(
            f"{src} and {dst} are both {src_side} files; convert to a "
            f"{'Keras (.keras, .weights.h5)' if src_side == 'torch' else 'PyTorch (.pth, .safetensors)'} file"
        )
    check_destination(dst, force)  # before any work
    if src_side == "torch":
        return _torch_to_keras_file(src, dst, arch, num_classes, force, verify, key)
    return _keras_to_torch_file(src, dst, arch, num_classes, force, verify)


def _torch_to_keras_file(src, dst, arch, num_classes, force, verify, key) -> Conversion:
    state_dict, spec, notes = read_torch_checkpoint(src, arch, num_classes, key)
    counters = {k: int(v) for k, v in state_dict.items() if k.endswith(COUNTER)}
    result = Conversion(src, dst, spec, arch is None, notes)
    with atomic_path(dst, force) as tmp:
        keras_archive.write(state_dict, spec, tmp, keras_io.metadata(spec, counters, src.name))
        if verify:  # the file as written, read back the way a user will read it
            written, _ = keras_io.load(tmp)
            result.report = _verify(_torch_model(spec, state_dict), written)
            if not result.report.ok:
                raise VerificationError(result.report, dst)
    return result


def _keras_to_torch_file(src, dst, arch, num_classes, force, verify) -> Conversion:
    keras_model, record = keras_io.load(src, arch, num_classes)
    spec = keras_model.spec
    state_dict = _keras_state_dict(keras_model, record)
    result = Conversion(src, dst, spec, arch is None, ["architecture from the Keras file"] if arch is None else [])
    with atomic_path(dst, force) as tmp:
        write_torch_file(state_dict, tmp, spec)
        if verify:
            written, _, _ = read_torch_checkpoint(tmp, spec.name, spec.num_classes if spec.include_top else None)
            result.report = _verify(_torch_model(spec, written), keras_model)
            if not result.report.ok:
                raise VerificationError(result.report, dst)
    return result
