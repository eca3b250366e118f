"""Converting checkpoint files between the frameworks, with the architecture read from the file.

    >>> state_dict, name = parity.load_checkpoint("resnet20-12fca82f.th")   # "resnet20"
    >>> result = parity.convert_file("resnet20-12fca82f.th", "resnet20.keras")
    >>> print(result.report.table())

PyTorch side: .pth/.pt/.th/.bin/.ckpt and .safetensors (see checkpoints for the layouts read).
Keras side: .keras and .weights.h5 (see keras_io). Either side converts to the other. Unless
verify=False, the written file is read back and compared with the source on random inputs by
the parity contract before it takes its name: a file that breaks the contract is never left at
the destination.

PyTorch -> Keras writes the Keras file directly (keras_archive), so that without verification
neither TensorFlow nor a model is loaded; verification reads the file with Keras.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

import resnet_spec as rs

from ..core import testing
from ..core.report import VerificationError
from . import checkpoints, keras_archive, keras_io
from .atomic import atomic_path, check_destination
from .errors import CheckpointError
from .loading import keras_state_dict, read_torch_checkpoint, side, torch_model

if TYPE_CHECKING:
    from ..core.report import ParityReport

VERIFY_BATCH = 2


@dataclass
class Conversion:
    src: Path
    dst: Path
    spec: rs.ResNetSpec
    inferred: bool  # the architecture was read from the tensors (no --arch)
    notes: list[str] = field(default_factory=list)  # what reading the source involved
    report: ParityReport | None = None  # None with verify=False


def verify_models(torch_model_, keras_model, seed: int = 0, reference: bool = True) -> ParityReport:
    """The parity report of the two models on random images of an odd, non-square size; with
    `reference`, held to the envelope around PyTorch float64 (see core.comparison.compare)."""
    from ..core import comparison  # loads Keras: only when verifying

    x = testing.random_images(torch_model_.spec, VERIFY_BATCH, seed=seed)
    return comparison.compare(torch_model_, keras_model, x, reference=reference)


def write_torch_file(state_dict, path: Path, spec: rs.ResNetSpec) -> None:
    if path.suffix == checkpoints.SAFETENSORS_SUFFIX:
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
    prefix: str | None = None,
    reference: bool = True,
) -> Conversion:
    """Convert `src` (PyTorch side or Keras side) to `dst` (the other side), atomically.

    A PyTorch source's state_dict is found wherever it is nested (`key` picks one entry where
    several could be the weights) and a prefix shared by every key is stripped (`prefix` picks
    the tensors under one, "" none); the notes of the result say what was done, and the
    written Keras file's record keeps them.

    Raises CheckpointError (and subclasses) for unreadable, unsafe or unfitting inputs,
    atomic.OutputExistsError unless `force`, and VerificationError (with the report) when the
    written model breaks the parity contract; in every failure `dst` is left as it was.
    `reference=False` verifies against the fixed bounds only, without the PyTorch float64 run
    (docs/architecture.md gives its cost)."""
    src, dst = checkpoints.check_readable(src), Path(dst)
    src_side, dst_side = side(src), side(dst)
    if src_side == dst_side:
        raise CheckpointError(
            f"{src} and {dst} are both {src_side} files; convert to a "
            f"{'Keras (.keras, .weights.h5)' if src_side == 'torch' else 'PyTorch (.pth, .safetensors)'} file"
        )
    check_destination(dst, force)  # before any work
    if src_side == "torch":
        return _torch_to_keras_file(src, dst, arch, num_classes, force, verify, key, prefix, reference)
    return _keras_to_torch_file(src, dst, arch, num_classes, force, verify, reference)


def _torch_to_keras_file(src, dst, arch, num_classes, force, verify_, key, prefix, reference) -> Conversion:
    state_dict, spec, notes = read_torch_checkpoint(src, arch, num_classes, key, prefix)
    counters = {k: int(v) for k, v in state_dict.items() if k in set(rs.plan(spec).counter_keys())}
    result = Conversion(src, dst, spec, arch is None, notes)
    with atomic_path(dst, force) as tmp:
        keras_archive.write(state_dict, spec, tmp, keras_io.metadata(spec, counters, src.name, notes))
        if verify_:  # the file as written, read back the way a user will read it
            written, _ = keras_io.load(tmp)
            result.report = verify_models(torch_model(spec, state_dict), written, reference=reference)
            if not result.report.ok:
                raise VerificationError(result.report, dst)
    return result


def _keras_to_torch_file(src, dst, arch, num_classes, force, verify_, reference) -> Conversion:
    keras_model, record = keras_io.load(src, arch, num_classes)
    spec = keras_model.spec
    state_dict = keras_state_dict(keras_model, record)
    result = Conversion(src, dst, spec, arch is None, ["architecture from the Keras file"] if arch is None else [])
    with atomic_path(dst, force) as tmp:
        write_torch_file(state_dict, tmp, spec)
        if verify_:
            written, _, _ = read_torch_checkpoint(tmp, spec.name, spec.num_classes if spec.include_top else None,
                                                  prefix="")  # our own keys, as written
            result.report = verify_models(torch_model(spec, written), keras_model, reference=reference)
            if not result.report.ok:
                raise VerificationError(result.report, dst)
    return result
