"""The Keras file of a resnet_tf model (.keras or .weights.h5), written straight from a PyTorch
state_dict: no TensorFlow import, no model built.

Importing TensorFlow and building a large Keras model cost more than the weights' I/O itself
(wide_resnet101_2: about 4 s and 3 s against 3 s for reading and writing its 485 MiB), so
`convert` writes the file below, and Keras reads it back only to verify it.

The layout is Keras 3's own (keras/src/saving/saving_lib.py). A `.keras` file is a zip archive,
stored uncompressed, of metadata.json, config.json and model.weights.h5. In the HDF5 file, each
layer of a functional model is the group `layers/<its class in snake case>` with `_1`, `_2`, ...
appended for the second, third, ... layer of that class in `model.layers` order; its `vars`
subgroup (attribute "name": the layer's name) holds its variables as datasets "0", "1", ... in
the layer's own order. A `.weights.h5` file is that HDF5 file alone. Layers without weights get
no group: Keras reads a missing group as an empty one. resnet_tf creates its Conv2D, BatchNorm
and Dense layers in the plan's order, so the plan gives every path; tests/test_keras_archive.py
compares these files with the ones Keras writes, for one network per family.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np

import resnet_spec as rs

from .keras_io import METADATA_ATTR, METADATA_MEMBER
from ..core.frameworks import keras_backend
from ..core.porting import check_state_dict, tensors, to_numpy

KERAS_CLASS = {rs.Conv: "conv2d", rs.BatchNorm: "batch_norm", rs.Linear: "dense"}  # snake-cased class names
MODEL_CLASS = {"module": "resnet_tf.model", "class_name": "ResNet", "registered_name": "resnet_tf>ResNet"}
WEIGHTS_MEMBER = "model.weights.h5"
COPY_CHUNK = 16 * 2**20


def weight_groups(spec: rs.ResNetSpec) -> list[tuple[str, rs.Weighted]]:
    """(HDF5 group of its variables, plan layer) for every weighted layer, in plan order."""
    seen: dict[str, int] = {}
    groups = []
    for layer in rs.plan(spec).weighted_layers():
        base = KERAS_CLASS[type(layer)]
        k = seen[base] = seen.get(base, -1) + 1
        groups.append((f"layers/{base}{f'_{k}' if k else ''}/vars", layer))
    return groups


def model_config(spec: rs.ResNetSpec) -> dict:
    """config.json: what keras.saving.serialize_keras_object gives for resnet_tf.ResNet(spec)."""
    config = {"spec": spec.to_config(), "input_shape": [None, None, spec.in_channels], "name": spec.name}
    return {**MODEL_CLASS, "config": config, "build_config": {"input_shape": None}, "compile_config": {}}


def resnet_tf_groups(spec: rs.ResNetSpec) -> list[tuple[str, str, rs.Weighted]]:
    """(HDF5 group, Keras layer name, plan layer) of every weighted layer of resnet_tf.ResNet(spec)."""
    backend = keras_backend()  # Keras records each layer's name, which depends on the backend
    return [(group, rs.keras_name(layer.name, backend), layer) for group, layer in weight_groups(spec)]


def write_weights(state_dict, spec: rs.ResNetSpec, path, record: dict | None = None, groups=None) -> None:
    """The HDF5 weights file of resnet_tf.ResNet(spec) holding `state_dict` (our key names;
    checked strictly as in porting), with `record` as a JSON root attribute. `groups` (HDF5
    group, Keras layer name, plan layer) place the layers in another model's layout
    (keras_applications); by default resnet_tf's (resnet_tf_groups)."""
    import h5py

    check_state_dict(state_dict, spec)
    with h5py.File(path, "w") as f:
        f.create_group("vars").attrs["name"] = spec.name  # the model's own (empty) variable group
        for group_name, keras_name, layer in groups if groups is not None else resnet_tf_groups(spec):
            group = f.create_group(group_name)
            group.attrs["name"] = keras_name
            for i, t in enumerate(tensors(layer)):
                value = t.to_keras(to_numpy(state_dict[f"{layer.name}.{t.torch_suffix}"]))
                group[str(i)] = value.astype(np.float32, copy=False)  # resnet_tf's variables are float32
        if record is not None:
            f.attrs[METADATA_ATTR] = json.dumps(record)


def write(state_dict, spec: rs.ResNetSpec, path: str | os.PathLike, record: dict) -> None:
    """A .keras archive or a .weights.h5 file (by the name of `path`) that Keras loads as
    resnet_tf.ResNet(spec) holding `state_dict`, with parity's `record` (see keras_io)."""
    path = Path(path)
    if path.name.endswith(".weights.h5"):
        write_weights(state_dict, spec, path, record)
        return
    # The weights go to a file beside the archive first: HDF5 needs to seek, a zip member cannot.
    fd, weights = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".h5")
    os.close(fd)
    try:
        write_weights(state_dict, spec, weights)
        saved = {"keras_version": package_metadata.version("keras"), "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}
        with zipfile.ZipFile(path, "w") as archive:  # ZIP_STORED, as Keras writes
            archive.writestr("metadata.json", json.dumps(saved))
            archive.writestr("config.json", json.dumps(model_config(spec)))
            with open(weights, "rb") as src, archive.open(WEIGHTS_MEMBER, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, COPY_CHUNK)  # ZipFile.write copies 8 KiB at a time
            archive.writestr(METADATA_MEMBER, json.dumps(record))
    finally:
        os.unlink(weights)
