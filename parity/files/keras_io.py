"""Keras files (`.keras`, `.weights.h5`) as conversion inputs and outputs, with our metadata.

Keras keeps no BatchNorm `num_batches_tracked` (see parity.core.porting), and a `.weights.h5`
file keeps no architecture. So parity adds a small JSON record to what it writes: the spec,
the source's counters and the source file's name, as an extra member `resnet_parity.json` of
the `.keras` zip archive (Keras ignores members it does not know) and as the root attribute
`resnet_parity` of a `.weights.h5` file. Converting back restores the counters, so
.pth -> .keras -> .pth reproduces every tensor, counters included; files from elsewhere
simply lack the record. keras_archive writes the files; this module reads them.

`.keras` files are loaded with Keras' safe_mode on, which refuses to deserialise Python code
(lambda layers) from the archive.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import resnet_spec as rs

from .checkpoints import check_readable
from .errors import CheckpointError, shorten

KERAS_SUFFIXES = (".keras", ".weights.h5")
METADATA_MEMBER = "resnet_parity.json"  # in a .keras archive
METADATA_ATTR = "resnet_parity"  # root attribute of a .weights.h5 file


def metadata(spec: rs.ResNetSpec, counters: dict[str, int], source: str, notes=()) -> dict:
    """The record: the spec, the source's BatchNorm counters, the source file's name, what
    reading it involved (nesting, prefix, head; convert's notes) and the preprocessing the
    weights expect (its name is in the spec; the numbers here, for readers without our code)."""
    return {"spec": spec.to_config(), rs.BN_COUNTER: counters, "source": source, "notes": list(notes),
            "preprocessing": preprocessing_record(spec)}


def preprocessing_record(spec: rs.ResNetSpec) -> dict:
    """The variant's evaluation preprocessing by name and numbers (mean and std on [0, 1] RGB
    pixels, BGR or not, the centre crop's share of the resized image, the classes' data set)."""
    return {"name": spec.preprocessing, **rs.NORMALIZATIONS[spec.preprocessing].record()}


def read_record(path: Path) -> dict:
    """Our metadata of a Keras file, or {} for a file written elsewhere."""
    try:
        if path.name.endswith(".weights.h5"):
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get(METADATA_ATTR)
        else:
            with zipfile.ZipFile(path) as archive:
                raw = archive.read(METADATA_MEMBER) if METADATA_MEMBER in archive.namelist() else None
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise CheckpointError(f"cannot read {path} as a Keras file (truncated or corrupt?): {shorten(err)}") from None
    return json.loads(raw) if raw is not None else {}


def load(path: str | Path, arch: str | None = None, num_classes: int | None = None):
    """A resnet_tf model from a .keras or .weights.h5 file, and the file's metadata record.

    A .keras file knows its architecture. A .weights.h5 file knows it only if parity wrote it;
    otherwise `arch` (and `num_classes` unless it is the variant's own) must be given."""
    from ..core.frameworks import keras  # torch before TensorFlow: see frameworks

    import resnet_tf

    path = check_readable(path)
    record = read_record(path)
    if path.name.endswith(".weights.h5"):
        if arch is not None:
            spec = rs.get(arch, **({"num_classes": num_classes} if num_classes else {}))
        elif record:
            spec = rs.ResNetSpec.from_config(record["spec"])
        else:
            raise CheckpointError(
                f"{path} holds weights only, not the architecture (it was not written by resnet-parity); "
                "pass --arch NAME, and --num-classes N unless it is the variant's own"
            )
        model = resnet_tf.ResNet(spec)
        _checked(path, lambda: model.load_weights(path), spec.name)
    else:
        model = _checked(path, lambda: keras.saving.load_model(path, safe_mode=True), None)
        if not isinstance(getattr(model, "spec", None), rs.ResNetSpec):
            raise CheckpointError(f"{path} holds a {type(model).__name__}, not a resnet_tf ResNet")
        if arch is not None and model.spec.name != arch:
            raise CheckpointError(f"{path} holds a {model.spec.name}, not the {arch} asked for by --arch")
    return model, record


def _checked(path: Path, load_fn, arch: str | None):
    """Run a Keras loader, turning its failures, and its warnings that some layers were left
    freshly initialised (a file that only partly fits), into one-paragraph CheckpointErrors."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = load_fn()
        except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as err:
            what = f"into {arch}" if arch else "as a Keras model"
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            detail = next((line for line in str(err).splitlines() if "variable.shape=" in line), "")
            shapes = " ".join(detail.split("Target variable")[0].split()) if detail else ""
            raise CheckpointError(
                f"cannot load {path} {what} (wrong --arch or --num-classes, or a corrupt file?): "
                f"{shorten(first, 200)}{' ' + shorten(shapes, 200) if shapes else ''}"
            ) from None
    partial = [w for w in caught if "freshly-initialized" in str(w.message) or "could not be loaded" in str(w.message)]
    if partial:
        raise CheckpointError(f"{path} fits {arch or 'the model'} only in part: {shorten(partial[0].message, 200)}")
    return result
