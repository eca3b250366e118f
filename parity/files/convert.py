"""Converting checkpoint files between the frameworks, with the architecture read from the file.

    >>> state_dict, name = parity.load_checkpoint("resnet20-12fca82f.th")   # "resnet20"
    >>> result = parity.convert_file("resnet20-12fca82f.th", "resnet20.keras")
    >>> print(result.report.table())

PyTorch side: .pth/.pt/.th/.bin/.ckpt and .safetensors (see checkpoints for the layouts read).
Keras side: .keras and .weights.h5 of resnet_tf models (see keras_io), and keras.applications'
.keras, .weights.h5 and legacy .h5 files (see keras_applications). Either side converts to the
other; a keras.applications file also converts to our .keras, and a keras_resnet* network to a
.weights.h5 file in keras.applications' layout. Unless
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

from ..core import porting, testing
from ..core.report import VerificationError
from . import checkpoints, keras_applications, keras_archive, keras_io
from .atomic import atomic_path, check_destination, full_suffix
from .errors import CheckpointError
from .loading import keras_state_dict, read_checkpoint, read_torch_checkpoint, side, tensor_source, torch_model

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
                  metadata={"arch": spec.name, "spec": json.dumps(spec.to_config()),
                            "preprocessing": json.dumps(keras_io.preprocessing_record(spec))})
    else:
        torch.save(state_dict, path)


LAYOUTS = ("resnet_tf", "keras_applications")  # of a written .weights.h5 file


def convert_file(
    src,
    dst,
    arch: str | None = None,
    num_classes: int | None = None,
    force: bool = False,
    verify: bool = True,
    key: str | None = None,
    prefix: str | None = None,
    layout: str = "resnet_tf",
    reference: bool = True,
) -> Conversion:
    """Convert `src` to `dst`, atomically: a PyTorch-side file to a Keras one, a resnet_tf Keras
    file to a PyTorch one, and a keras.applications file to either.

    A PyTorch source's state_dict is found wherever it is nested (`key` picks one entry where
    several could be the weights) and a prefix shared by every key is stripped (`prefix` picks
    the tensors under one, "" none); a keras.applications source's architecture is identified
    from its layer names and shapes. The notes of the result say what was done, and the
    written Keras file's record keeps them. `layout="keras_applications"` writes a keras_resnet*
    network as a .weights.h5 file for keras.applications' own model (its load_weights); the
    default is resnet_tf's layout.

    Raises CheckpointError (and subclasses) for unreadable, unsafe or unfitting inputs,
    atomic.OutputExistsError unless `force`, and VerificationError (with the report) when the
    written model breaks the parity contract; in every failure `dst` is left as it was.
    `reference=False` verifies against the fixed bounds only, without the PyTorch float64 run
    (docs/architecture.md gives its cost)."""
    src, dst = checkpoints.check_readable(src), Path(dst)
    if layout not in LAYOUTS:
        raise ValueError(f"layout: got {layout!r}, expected one of {LAYOUTS}")
    src_side, dst_side = side(src), side(dst)
    as_tensors = tensor_source(src)
    if src_side == dst_side and not (src_side == "keras" and as_tensors):
        raise CheckpointError(
            f"{src} and {dst} are both {src_side} files; convert to a "
            f"{'Keras (.keras, .weights.h5)' if src_side == 'torch' else 'PyTorch (.pth, .safetensors)'} file"
        )
    if full_suffix(dst) == keras_applications.LEGACY_SUFFIX:
        raise CheckpointError(f"{dst}: legacy .h5 files are read, not written; write .keras or .weights.h5")
    if layout == "keras_applications" and full_suffix(dst) != ".weights.h5":
        raise CheckpointError(f"{dst}: keras.applications' layout is written as a .weights.h5 file")
    check_destination(dst, force)  # before any work
    if dst_side == "keras":
        return _to_keras_file(src, dst, arch, num_classes, force, verify, key, prefix, layout, reference)
    if as_tensors:
        state_dict, spec, notes = read_checkpoint(src, arch, num_classes, key, prefix)
        result = Conversion(src, dst, spec, arch is None, notes)
        return _to_torch_file(result, state_dict, lambda: porting.torch_to_keras(torch_model(spec, state_dict)),
                              force, verify, reference)
    keras_model, record = keras_io.load(src, arch, num_classes)
    notes = ["architecture from the Keras file"] if arch is None else []
    result = Conversion(src, dst, keras_model.spec, arch is None, notes)
    return _to_torch_file(result, keras_state_dict(keras_model, record), lambda: keras_model, force, verify,
                          reference)


def _to_keras_file(src, dst, arch, num_classes, force, verify_, key, prefix, layout, reference) -> Conversion:
    state_dict, spec, notes = read_checkpoint(src, arch, num_classes, key, prefix)
    counters = {k: int(v) for k, v in state_dict.items() if k in set(rs.plan(spec).counter_keys())}
    result = Conversion(src, dst, spec, arch is None, notes)
    record = keras_io.metadata(spec, counters, src.name, notes)
    if layout == "keras_applications":
        keras_applications.check_layout(spec, dst)  # before anything is written
    with atomic_path(dst, force) as tmp:
        if layout == "keras_applications":
            keras_applications.write_weights(state_dict, spec, tmp, record)
        else:
            keras_archive.write(state_dict, spec, tmp, record)
        if verify_:  # the file as written, read back the way a user will read it
            result.report = verify_models(torch_model(spec, state_dict), _read_back(tmp, spec, layout),
                                          reference=reference)
            if not result.report.ok:
                raise VerificationError(result.report, dst)
    return result


def _read_back(path: Path, spec: rs.ResNetSpec, layout: str):
    """The Keras model of a file just written: loaded by Keras (resnet_tf's layout), or read as
    keras.applications' layers into resnet_tf (its own model is keras.applications')."""
    if layout == "resnet_tf":
        return keras_io.load(path)[0]
    state_dict, _, _ = keras_applications.read(path, spec.name, spec.num_classes if spec.include_top else None)
    return porting.torch_to_keras(torch_model(spec, state_dict))


def _to_torch_file(result: Conversion, state_dict, keras_model, force, verify_, reference) -> Conversion:
    """Write `state_dict` as result.dst; verify it against `keras_model()`, the source's Keras model."""
    spec = result.spec
    with atomic_path(result.dst, force) as tmp:
        write_torch_file(state_dict, tmp, spec)
        if verify_:
            written, _, _ = read_torch_checkpoint(tmp, spec.name, spec.num_classes if spec.include_top else None,
                                                  prefix="")  # our own keys, as written
            result.report = verify_models(torch_model(spec, written), keras_model(), reference=reference)
            if not result.report.ok:
                raise VerificationError(result.report, result.dst)
    return result
