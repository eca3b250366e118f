"""Reading PyTorch checkpoint files safely, in the layouts users have on disk.

Only two readers ever touch a file: `torch.load(..., weights_only=True)`, whose unpickler
accepts tensors, numbers, strings and containers and refuses every other global before
calling it, and safetensors, which holds no code at all. A file that asks for anything else
(a pickled model, a `__reduce__` that would run a command) is refused with
`UnsafeCheckpointError`, and nothing in it runs.

The state_dict may be the file itself or nested at any depth under any key: PyTorch's tutorial
checkpoint keeps it under `model_state_dict` beside the optimizer's, Lightning under
`state_dict` beside optimizer states, loops and callbacks (`find_state_dict`). Its keys may
all share a prefix: DataParallel's `module.`, torch.compile's `_orig_mod.`, Lightning's
`model.` or whatever attribute held the network (`backbone.`, `net.`, ...). pytorch_resnet_cifar10
calls the classifier `linear`. `normalize_keys` brings all of that to our names, which are
torchvision's, the official ResNeSt repository's and timm's (see README).

Importing this module loads no framework: torch is imported when a file is read.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import resnet_spec as rs

from .errors import CheckpointError, UnsafeCheckpointError, shorten

TORCH_SUFFIXES = (".pth", ".pt", ".th", ".bin", ".ckpt", ".tar")  # .tar: timm's model_best.pth.tar
SAFETENSORS_SUFFIX = ".safetensors"
# Where training scripts put the weights. When a file holds several mappings of tensors and one
# of them sits under one of these top-level keys, the first such key wins (plain weights before
# an EMA copy, as timm's own loader prefers); otherwise several are an error naming them all.
NESTED_KEYS = ("state_dict", "model", "module", "state_dict_ema")
MAX_DEPTH = 6  # how deep the search for the state_dict goes into nested containers
RENAMES = {"linear.": "fc."}  # pytorch_resnet_cifar10's classifier
KEY_SEPARATOR = "/"  # between the keys of a nested entry's path, as --key takes it: "ema/model"


def check_readable(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; expected a checkpoint file")
    return path


def read_torch_file(path: str | Path):
    """The object stored in a .pth/.pt/.th/.bin/.ckpt or .safetensors file, read without ever
    unpickling code; tensors land on the CPU."""
    path = check_readable(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"cannot read {path} as safetensors (truncated or corrupt?): {shorten(err)}") from None
    if path.suffix not in TORCH_SUFFIXES:
        raise CheckpointError(
            f"{path}: unknown checkpoint suffix {path.suffix!r}; expected one of "
            f"{', '.join(TORCH_SUFFIXES + (SAFETENSORS_SUFFIX, '.keras', '.weights.h5'))}"
        )

    import pickle

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes from the weights-only unpickler
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        wanted = re.search(r"GLOBAL (\S+)", str(err))
        what = f"it asks for {wanted.group(1)}" if wanted else f"its pickle holds more than tensors ({shorten(err, 120)})"
        raise UnsafeCheckpointError(
            f"refused to load {path}: {what}, which is not a tensor, number, string or container. "
            "Unpickling it could run code from the file, so it was not unpickled (torch.load with "
            "weights_only=True). A whole pickled model (torch.save(model)) is refused too: save "
            "model.state_dict(), or use safetensors."
        ) from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, IndexError, AttributeError) as err:
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint (truncated or corrupt?): "
            f"{type(err).__name__}: {shorten(err) or 'no detail'}"
        ) from None


def _is_state_dict(obj) -> bool:
    import torch

    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _is_optimizer_state(obj) -> bool:
    """torch.optim.Optimizer.state_dict(): its per-parameter buffers (momentum, Adam's moments)
    are tensors too, under parameter numbers, and never a model's weights."""
    return isinstance(obj, Mapping) and {"state", "param_groups"} <= set(obj)


def _has_weights(mapping: Mapping) -> bool:
    """Some key names a module's weight ("conv1.weight", "weight"): a model's state_dict has
    one, optimizer moments ("exp_avg") and metric tensors ("best_model_score") have none."""
    return any(k.rsplit(".", 1)[-1] == "weight" for k in mapping)


def _candidates(obj, path: tuple = ()):
    """(path, mapping) for every mapping of names to tensors nested in `obj` that may be a
    model's weights, in the file's order. Optimizer states and int-keyed mappings (an
    optimizer's per-parameter state) are not searched."""
    if len(path) > MAX_DEPTH:
        return
    if isinstance(obj, Mapping):
        if _is_state_dict(obj):
            if _has_weights(obj):
                yield path, obj
            return
        if _is_optimizer_state(obj) or not all(isinstance(k, str) for k in obj):
            return
        for k, v in obj.items():
            yield from _candidates(v, path + (k,))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _candidates(v, path + (i,))


def entry_name(path: tuple) -> str:
    """A nested entry's path as --key takes it."""
    return KEY_SEPARATOR.join(map(str, path))


def _describe(candidates) -> str:
    return ", ".join(f"{entry_name(p)!r} ({len(m)} tensors)" for p, m in candidates)


def _entry(obj, key: str, source: str):
    """The entry `key` names: a top-level key, or a path of keys joined by KEY_SEPARATOR (list
    positions as numbers)."""
    if isinstance(obj, Mapping) and key in obj:
        return obj[key]
    node = obj
    for part in key.split(KEY_SEPARATOR):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            found = list(_candidates(obj))
            holds = (f"entries holding tensors: {_describe(found)}" if found else
                     f"it holds: {', '.join(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__}")
            raise CheckpointError(f"{source} has no entry {key!r}; {holds}")
    return node


def find_state_dict(obj, key: str | None = None, source: str = "checkpoint") -> tuple[dict, str | None, list[str]]:
    """The state_dict inside a loaded checkpoint, where it was found (None: the file is the
    state_dict; else its entry's path, as --key takes it) and the other entries that hold
    tensors too. `key` picks one explicitly (e.g. "state_dict_ema", "ema/model")."""
    if key is not None:
        entry = _entry(obj, key, source)
        if not _is_state_dict(entry):
            raise CheckpointError(f"{source}[{key!r}] is not a mapping of names to tensors "
                                  f"(it is a {type(entry).__name__})")
        return dict(entry), key, []
    if _is_state_dict(obj):
        return dict(obj), None, []
    if not isinstance(obj, (Mapping, list, tuple)):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state_dict")
    found = list(_candidates(obj))
    if not found:
        held = (", ".join(f"{k} ({type(v).__name__})" for k, v in list(obj.items())[:12])
                if isinstance(obj, Mapping) else f"a {type(obj).__name__} of {len(obj)}")
        raise CheckpointError(
            f"{source} holds no state_dict: expected a mapping of parameter names to tensors, at the top "
            f"or nested under some key (optimizer states aside); it holds {held or 'nothing'}. "
            "If the weights are under an entry of another kind, --key KEY names it"
        )
    if len(found) > 1:
        known = sorted((p for p, _ in found if len(p) == 1 and p[0] in NESTED_KEYS), key=lambda p: NESTED_KEYS.index(p[0]))
        if not known:
            raise CheckpointError(
                f"{source} holds several mappings of tensors that could be the model's weights: "
                f"{_describe(found)}; pass --key with the one to convert (e.g. --key {entry_name(found[0][0])})"
            )
        found.sort(key=lambda c: c[0] != known[0])
    (path, state_dict), others = found[0], found[1:]
    return dict(state_dict), entry_name(path), [entry_name(p) for p, _ in others]


@functools.lru_cache(maxsize=1)
def known_roots() -> frozenset[str]:
    """The first parts of every registered variant's state_dict keys (conv1, bn1, layer1, fc,
    ...), and of the names we rename: a prefix that starts with one is part of the model."""
    roots = {k.split(".", 1)[0] for name in rs.names() for k in rs.plan(rs.get(name)).state_dict_shapes()}
    return frozenset(roots | {old.rstrip(".") for old in RENAMES})


def shared_prefix(keys) -> str:
    """The longest dotted prefix every key shares ("model.", "module._orig_mod."), "" if none:
    whole parts only, never one of our own first parts (conv1, layer1, ...), and leaving every
    key at least a module and a tensor name."""
    split = [k.split(".") for k in keys]
    if not split:
        return ""
    parts = []
    for column in zip(*(s[: len(s) - 2] for s in split)):  # keep two parts of the shortest key
        if len(set(column)) > 1 or column[0] in known_roots():
            break
        parts.append(column[0])
    return "".join(p + "." for p in parts)


def _as_prefix(prefix: str) -> str:
    return prefix if prefix == "" or prefix.endswith(".") else prefix + "."


def _roots(keys, limit: int = 6) -> str:
    counts: dict[str, int] = {}
    for k in keys:
        counts[k.split(".", 1)[0]] = counts.get(k.split(".", 1)[0], 0) + 1
    top = sorted(counts.items(), key=lambda c: -c[1])
    return ", ".join(f"{r}. ({n})" for r, n in top[:limit]) + (f" and {len(top) - limit} more" if len(top) > limit else "")


def normalize_keys(state_dict: Mapping, prefix: str | None = None,
                   source: str = "checkpoint") -> tuple["OrderedDict", list[str]]:
    """The state_dict under our names, and a note per change made. `prefix` ("model.") takes
    the tensors under it, others left out; "" takes every key as it is; None strips the dotted
    prefix that every key shares, if any (see shared_prefix). Then known renames are applied,
    and a classifier saved as nn.Sequential(nn.Linear) (fc.0) becomes the plain Linear fc."""
    notes = []
    items = list(state_dict.items())
    if prefix is None:
        strip = shared_prefix(k for k, _ in items)
        if strip:
            notes.append(f"stripped the {strip!r} prefix shared by every key (--prefix picks another)")
    else:
        strip = _as_prefix(prefix)
        taken = [(k, v) for k, v in items if k.startswith(strip)]
        if not taken:
            raise CheckpointError(f"{source}: no key starts with the prefix {strip!r} given by --prefix; the keys start "
                                  f"with: {_roots(k for k, _ in items)}")
        if strip:
            left = [k for k, _ in items if not k.startswith(strip)]
            shown = ", ".join(left[:4]) + (f" and {len(left) - 4} more" if len(left) > 4 else "")
            notes.append(f"took the {len(taken)} tensors under {strip!r} (--prefix)"
                         + (f", leaving out {len(left)} others ({shown})" if left else ""))
        items = taken
    items = [(k[len(strip):], v) for k, v in items]
    keys = {k for k, _ in items}
    for old, new in RENAMES.items():
        if any(k.startswith(old) for k in keys) and not any(k.startswith(new) for k in keys):
            items = [(new + k[len(old):] if k.startswith(old) else k, v) for k, v in items]
            notes.append(f"renamed {old}* to {new}*")
    one_linear = {f"{rs.CLASSIFIER}.0.weight", f"{rs.CLASSIFIER}.0.bias"}
    if one_linear == {k for k, _ in items if k.startswith(rs.CLASSIFIER + ".")}:
        items = [(k.replace(".0.", ".", 1) if k in one_linear else k, v) for k, v in items]
        notes.append(f"read {rs.CLASSIFIER}.0 (an nn.Sequential holding one Linear) as the Linear {rs.CLASSIFIER}")
    return OrderedDict(items), notes
