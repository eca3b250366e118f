"""keras.applications' ResNets as files: read without building keras.applications, and written so
that keras.applications' own model loads them.

keras.applications names its layers its own way (`conv1_conv`, `conv2_block1_1_bn`,
`conv2_block1_preact_bn`, `post_bn`, `predictions`); `resnet_spec.keras_applications_names`
derives that name for every weighted layer of our keras_resnet* variants from their plans. A
layer's variables come in the order resnet_tf's layers hold them (Conv2D kernel, bias;
BatchNormalization gamma, beta, moving mean, moving variance; Dense kernel, bias), so porting's
one transform per layer kind turns them into PyTorch tensors under our names.

Three kinds of file, each read with h5py alone: nothing in a file is deserialised or run (the
model's config is only inspected), which is stricter than Keras' safe mode.
- `.keras` (Keras 3): a zip archive of config.json and model.weights.h5, laid out as below.
- `.weights.h5` (Keras 3): `layers/<class, snake case>[_k]/vars/<i>`, the `vars` group's
  attribute "name" holding the layer's name (Keras before 3.10 wrote no name: in a `.keras`
  file the config's layer order then gives it, as Keras numbers the groups).
- legacy `.h5` (tf.keras' and Keras 3's `model.save("x.h5")`, and the weights files that
  keras.applications downloads): `[model_weights/]<layer>/...` with the attribute `layer_names`
  and, per layer, `weight_names` (`conv1_conv/kernel:0` from tf.keras, `conv1_conv/kernel` from
  Keras 3), and the model's JSON in the attribute `model_config` of a whole-model file.
Optimizer state (`optimizer/`, `optimizer_weights/`) is left out, as for PyTorch files. Anything
else is an error naming it, as are a Lambda layer (code) in the config and a dataset of pickled
or opaque objects.
"""

from __future__ import annotations

import functools
import io
import json
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

import resnet_spec as rs
from resnet_spec.keras_applications import FAMILY, PREDICTIONS

from ..core.porting import NUM_BATCHES_TRACKED, tensors
from . import keras_archive, keras_io
from .atomic import full_suffix
from .checkpoints import check_readable
from .errors import CheckpointError, UnsafeCheckpointError, shorten
from .identify import ArchitectureError, Difference

LAYOUT = "keras_applications"  # record["layout"] of the .weights.h5 files written here
LEGACY_SUFFIX = ".h5"
# Keras' class of each weighted layer kind, snake-cased as Keras names a layer's weights group.
KERAS_CLASSES = {rs.Conv: "conv2d", rs.BatchNorm: "batch_normalization", rs.Linear: "dense"}
OPTIMIZER_GROUPS = ("optimizer", "optimizer_weights")
CODE_LAYERS = ("Lambda", "__lambda__")  # classes whose config carries Python code
# keras.applications' `pooling` of a backbone (include_top=False), by the layer it adds last;
# without either (or without a config: a .weights.h5 file) its default, None: the feature map.
POOLING_LAYERS = {"GlobalAveragePooling2D": "avg", "GlobalMaxPooling2D": "max"}
CONFIG_MEMBER = "config.json"
NUMERIC_KINDS = "fiu"  # numpy dtype kinds a weight may have


def variant_names() -> list[str]:
    return rs.names(FAMILY)


@functools.cache
def known_layer_names() -> frozenset[str]:
    """Every keras.applications layer name of our variants (with their classifier)."""
    return frozenset(n for name in variant_names() for n in rs.keras_applications_names(rs.get(name)).values())


# ---------------------------------------------------------------------------------------------
# Reading: layer name -> arrays


def holds(path: str | Path) -> bool:
    """Whether a Keras-side file holds a keras.applications model (layers under its names)
    rather than a resnet_tf model. Ours carry our record or resnet_tf's model class; a
    `.weights.h5` without record is keras.applications' when its layer names are."""
    path = check_readable(path)
    suffix = full_suffix(path)
    if suffix == LEGACY_SUFFIX:
        return True  # never written by resnet-parity
    record = keras_io.read_record(path)
    if record:
        return record.get("layout") == LAYOUT
    if suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read(CONFIG_MEMBER))
        return config.get("registered_name") != keras_archive.MODEL_CLASS["registered_name"]
    import h5py

    with h5py.File(path, "r") as f:
        names = {_text(g["vars"].attrs.get("name", "")) for g in f.get("layers", {}).values() if "vars" in g}
    return bool(names & known_layer_names())


def read_layers(path: str | Path) -> tuple[dict[str, list[np.ndarray]], list[str], dict | None]:
    """(layer name -> its arrays in the layer's own order, notes, the model's config or None) of
    a `.keras`, `.weights.h5` or legacy `.h5` file; see the module docstring."""
    import h5py

    path = check_readable(path)
    try:
        if full_suffix(path) == ".keras":
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read(CONFIG_MEMBER))
                refuse_code(config, path)
                # In memory: h5py's seeks on a zip member re-read it from the start (ResNet50: 2.3 s
                # against 0.8 s).
                weights = io.BytesIO(archive.read(keras_archive.WEIGHTS_MEMBER))
            with h5py.File(weights, "r") as f:
                return (*_keras3_layers(f, config, path), config)
        with h5py.File(path, "r") as f:
            if full_suffix(path) == LEGACY_SUFFIX:
                return _legacy_layers(f, path)
            return (*_keras3_layers(f, None, path), None)
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"cannot read {path} as a Keras file (truncated or corrupt?): {shorten(err)}") from None


def refuse_code(config, source) -> None:
    """Raise UnsafeCheckpointError if the model's config holds a layer carrying Python code."""
    if isinstance(config, dict):
        if config.get("class_name") in CODE_LAYERS or "function_type" in config:
            name = (config.get("config") or {}).get("name", "?") if isinstance(config.get("config"), dict) else "?"
            raise UnsafeCheckpointError(
                f"{source} holds a {config.get('class_name', 'Lambda')} layer {name!r}, whose config is Python code; "
                "it is refused (only layers without code are read)"
            )
        values = config.values()
    elif isinstance(config, list):
        values = config
    else:
        return
    for value in values:
        refuse_code(value, source)


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _array(dataset, source) -> np.ndarray:
    """A dataset's array, refusing anything that is not numbers (pickled or opaque objects)."""
    if dataset.dtype.kind not in NUMERIC_KINDS:
        raise UnsafeCheckpointError(
            f"{source}: {dataset.name} holds {dataset.dtype} data (pickled or opaque objects), not weights; refused"
        )
    return dataset[()]


def _datasets(group) -> list[str]:
    """The paths (relative to `group`) of every dataset under it, optimizer state aside."""
    import h5py

    found = []
    group.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return [name for name in found if name.split("/", 1)[0] not in OPTIMIZER_GROUPS]


def _unknown(source, entries: list[str], why: str) -> CheckpointError:
    more = f" and {len(entries) - 6} more" if len(entries) > 6 else ""
    return CheckpointError(f"{source} holds {len(entries)} entries that are {why}: {', '.join(entries[:6])}{more}")


def _snake_case(class_name: str) -> str:
    """Keras' naming.to_snake_case: the name of a layer's weights group."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _group_names(config) -> dict[str, str]:
    """Weights group ("conv2d_3") -> layer name, from a functional model's config, for files
    whose groups carry no name: Keras numbers each class's layers in the config's order."""
    seen: dict[str, int] = {}
    out = {}
    for layer in (config or {}).get("config", {}).get("layers", []):
        base = _snake_case(layer.get("class_name", ""))
        k = seen[base] = seen.get(base, -1) + 1
        out[f"{base}{f'_{k}' if k else ''}"] = layer.get("config", {}).get("name")
    return out


def _keras3_layers(f, config, source) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    by_group = _group_names(config)
    found: dict[str, dict[int, np.ndarray]] = {}
    unknown = []
    for path in _datasets(f):
        parts = path.split("/")
        if len(parts) != 4 or parts[0] != "layers" or parts[2] != "vars" or not parts[3].isdigit():
            unknown.append(path)
            continue
        name = _text(f[f"layers/{parts[1]}/vars"].attrs.get("name", "")) or by_group.get(parts[1])
        if not name:
            raise CheckpointError(f"{source}: layers/{parts[1]} carries no layer name (a file of Keras before 3.10 "
                                  "without its model config); save it again with a current Keras, or as .keras")
        found.setdefault(name, {})[int(parts[3])] = _array(f[path], source)
    if unknown:
        raise _unknown(source, unknown, "no layer's variables of one functional model (a model nested in another, "
                                        "such as keras.applications' ResNet50 inside a Sequential, is not read)")
    return _ordered(found, source), _optimizer_note(f)


def _ordered(found: dict[str, dict[int, np.ndarray]], source) -> dict[str, list[np.ndarray]]:
    layers = {}
    for name, arrays in found.items():
        if sorted(arrays) != list(range(len(arrays))):
            raise CheckpointError(f"{source}: layer {name!r} holds variables {sorted(arrays)}; expected 0..{len(arrays) - 1}")
        layers[name] = [arrays[i] for i in range(len(arrays))]
    return layers


def _optimizer_note(f) -> list[str]:
    present = [g for g in OPTIMIZER_GROUPS if g in f]
    return [f"optimizer state ({', '.join(present)}) left out"] if present else []


def _attribute_list(group, name: str) -> list[str]:
    """An attribute holding a list of names, which Keras splits into name0, name1, ... when it
    exceeds HDF5's header limit."""
    if name in group.attrs:
        return [_text(n) for n in group.attrs[name]]
    out, k = [], 0
    while f"{name}{k}" in group.attrs:
        out += [_text(n) for n in group.attrs[f"{name}{k}"]]
        k += 1
    return out


def _legacy_layers(f, source) -> tuple[dict[str, list[np.ndarray]], list[str], dict | None]:
    config = json.loads(_text(f.attrs["model_config"])) if "model_config" in f.attrs else None
    refuse_code(config, source)
    g = f["model_weights"] if "model_weights" in f else f
    names = _attribute_list(g, "layer_names")
    if not names:
        raise CheckpointError(f"{source} is an HDF5 file without Keras' layer_names: not a Keras .h5 file "
                              "(a Keras 3 weights file is named .weights.h5)")
    layers, used = {}, set()
    for name in names:
        weight_names = _attribute_list(g[name], "weight_names") if name in g else []
        if weight_names:
            layers[name] = [_array(g[name][w], source) for w in weight_names]
            used |= {f"{name}/{w}" for w in weight_names}
    unknown = [p for p in _datasets(g) if p not in used]
    if unknown:
        raise _unknown(source, unknown, "no weights of the layers it lists (layer_names, weight_names)")
    return layers, _optimizer_note(f), config


# ---------------------------------------------------------------------------------------------
# Which variant, and its state_dict


def keras_shapes(layer: rs.Weighted) -> tuple[tuple[int, ...], ...]:
    """The shapes of a plan layer's Keras variables, in order (a zero-stride view is transformed:
    nothing is allocated)."""
    zero = np.float32(0)
    return tuple(t.to_keras(np.broadcast_to(zero, layer.tensor_shapes[t.torch_suffix])).shape for t in tensors(layer))


def expected_layers(spec: rs.ResNetSpec) -> dict[str, tuple[tuple[int, ...], ...]]:
    """keras.applications layer name -> the shapes of its variables, for the network `spec`."""
    names = rs.keras_applications_names(spec)
    return {names[layer.name]: keras_shapes(layer) for layer in rs.plan(spec).weighted_layers()}


def backbone_pooling(config: dict | None) -> str | None:
    """The `pooling` a keras.applications backbone was built with, as its config shows it."""
    classes = {layer.get("class_name") for layer in (config or {}).get("config", {}).get("layers", [])}
    return next((pooling for cls, pooling in POOLING_LAYERS.items() if cls in classes), None)


def _options(layers: dict[str, list[np.ndarray]], num_classes: int | None, config: dict | None = None) -> dict:
    """num_classes from the classifier's kernel (in, out), unless given; none: a backbone,
    pooled as its config says (see POOLING_LAYERS)."""
    arrays = layers.get(PREDICTIONS)
    if arrays is None and num_classes is None:
        return {"include_top": False, "pooling": backbone_pooling(config)}
    if arrays is None:
        return {"num_classes": num_classes}
    if num_classes is None and arrays and arrays[0].ndim == 2:
        num_classes = int(arrays[0].shape[1])
    return {"num_classes": num_classes} if num_classes is not None else {}


def identify(layers: dict[str, list[np.ndarray]], arch: str | None = None, num_classes: int | None = None,
             source: str = "file", config: dict | None = None) -> rs.ResNetSpec:
    """The keras.applications variant whose layers are exactly these names and shapes (with
    `arch`, only that one is tried, and a mismatch lists every difference); a backbone's
    pooling from the model's `config` where the file has one."""
    if arch is not None and arch not in variant_names():
        raise ArchitectureError(f"{source} holds a keras.applications model; --arch {arch} is none of its "
                                f"ResNets ({', '.join(variant_names())})")
    shapes = {name: tuple(a.shape for a in arrays) for name, arrays in layers.items()}
    options = _options(layers, num_classes, config)
    specs = [rs.get(name, **options) for name in ([arch] if arch else variant_names())]
    diffs = sorted((Difference(spec, shapes, expected_layers(spec)) for spec in specs), key=lambda d: d.size)
    exact = [d.spec for d in diffs if d.size == 0]
    if len(exact) == 1:
        return exact[0]
    if exact:
        raise ArchitectureError(f"{source} fits several architectures equally: {', '.join(s.name for s in exact)}; "
                                "pass --arch NAME")
    head = f"num_classes={options['num_classes']}" if "num_classes" in options else "no classifier"
    if arch:
        raise ArchitectureError(f"{source} does not fit {arch} ({head}): {diffs[0].describe(limit=6)}")
    closest = "; ".join(f"{d.spec.name}: {d.describe(limit=2)}" for d in diffs[:3])
    raise ArchitectureError(
        f"{source} holds a Keras model with {len(shapes)} weighted layers ({head}) that is none of keras.applications' "
        f"ResNets. Closest candidates: {closest}."
    )


def to_state_dict(layers: dict[str, list[np.ndarray]], spec: rs.ResNetSpec, counters=None) -> OrderedDict:
    """Our PyTorch state_dict (resnet_torch's order) of a file's layers that fit `spec` (see
    identify); BatchNorm counters from `counters`, else NUM_BATCHES_TRACKED."""
    names, counters = rs.keras_applications_names(spec), counters or {}
    out = OrderedDict()
    for layer in rs.plan(spec).weighted_layers():
        for t, array in zip(tensors(layer), layers[names[layer.name]], strict=True):
            out[f"{layer.name}.{t.torch_suffix}"] = torch.from_numpy(np.ascontiguousarray(t.to_torch(array)))
        if isinstance(layer, rs.BatchNorm):
            key = f"{layer.name}.{rs.BN_COUNTER}"
            out[key] = torch.tensor(counters.get(key, NUM_BATCHES_TRACKED), dtype=torch.long)
    return out


def read(path: str | Path, arch: str | None = None, num_classes: int | None = None):
    """(state_dict under our names, spec, notes) of a keras.applications file."""
    path = check_readable(path)
    layers, notes, config = read_layers(path)
    spec = identify(layers, arch, num_classes, str(path), config)
    record = keras_io.read_record(path) if full_suffix(path) != LEGACY_SUFFIX else {}
    how = "identified from its layer names and shapes" if arch is None else "checked against --arch"
    notes = [f"keras.applications layers ({len(layers)} with weights), {how}", *notes]
    return to_state_dict(layers, spec, record.get(rs.BN_COUNTER)), spec, notes


# ---------------------------------------------------------------------------------------------
# Writing: a .weights.h5 file that keras.applications' model.load_weights reads


def keras_order(spec: rs.ResNetSpec) -> list[rs.Weighted]:
    """The weighted layers in keras.applications' `model.layers` order, by which Keras numbers
    each class's weights groups (conv2d, conv2d_1, ...) and load_weights finds them.

    A functional model lists its layers by decreasing depth (distance from the output), ties in
    the order its graph walk meets them, and keras.applications adds `[shortcut, x]`: so a
    projection shortcut's layers, which end at the add as the branch's last ones do (no layer
    between them and the add), come each just before the branch layer at the same depth
    (v1: 1_conv 1_bn 2_conv 2_bn 0_conv 3_conv 0_bn 3_bn)."""
    p = rs.plan(spec)

    def weighted(steps):
        return [s for s in rs.leaves(steps) if isinstance(s, rs.WEIGHTED)]

    order = weighted(p.stem)
    for block in p.blocks:
        branch, shortcut = weighted(block.branch), weighted(block.shortcut)
        tail = len(branch) - len(shortcut)
        order += branch[:tail]
        for pair in zip(shortcut, branch[tail:]):
            order += pair
        order += weighted(block.after_add)
    return order + weighted(p.final) + weighted(p.head)


def weight_groups(spec: rs.ResNetSpec) -> list[tuple[str, str, rs.Weighted]]:
    """(HDF5 group, keras.applications layer name, plan layer) for every weighted layer."""
    names = rs.keras_applications_names(spec)
    seen: dict[str, int] = {}
    groups = []
    for layer in keras_order(spec):
        base = KERAS_CLASSES[type(layer)]
        k = seen[base] = seen.get(base, -1) + 1
        groups.append((f"layers/{base}{f'_{k}' if k else ''}/vars", names[layer.name], layer))
    return groups


def check_layout(spec: rs.ResNetSpec, dst) -> None:
    """Raise CheckpointError unless `spec` can be written in keras.applications' layout to `dst`."""
    if full_suffix(dst) != ".weights.h5":
        raise CheckpointError(f"{dst}: keras.applications' layout is written as a .weights.h5 file "
                              "(load it with model.load_weights into keras.applications' own model)")
    if spec.family != FAMILY:
        raise CheckpointError(f"{spec.name} is no keras.applications network; only {', '.join(variant_names())} "
                              "can be written in keras.applications' layout")
    if spec.head:
        raise CheckpointError(f"{spec.name} has a classifier head of {len(spec.head) + 1} layers; keras.applications' "
                              f"classifier is one Dense layer ({PREDICTIONS!r}), so this head has no place in its layout")


def write_weights(state_dict, spec: rs.ResNetSpec, path, record: dict) -> None:
    """A .weights.h5 file that `model.load_weights` reads into keras.applications' own model of
    `spec` (e.g. keras.applications.ResNet50(weights=None, classes=spec.num_classes)), holding
    `state_dict` (our names), with parity's `record` (its "layout" says keras_applications)."""
    check_layout(spec, path)
    keras_archive.write_weights(state_dict, spec, path, {**record, "layout": LAYOUT}, groups=weight_groups(spec))
