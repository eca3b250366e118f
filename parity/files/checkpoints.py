"""Reading PyTorch checkpoint files safely, in the layouts users have on disk.

Only two readers ever touch a file: `torch.load(..., weights_only=True)`, whose unpickler
accepts tensors, numbers, strings and containers and refuses every other global before
calling it, and safetensors, which holds no code at all. A file that asks for anything else
(a pickled model, a `__reduce__` that would run a command) is refused with
`UnsafeCheckpointError`, and nothing in it runs.

The state_dict may be the file itself or nested under one of NESTED_KEYS, keys may carry
DataParallel's `module.` (or torch.compile's `_orig_mod.`) prefix, and pytorch_resnet_cifar10
calls the classifier `linear`. `normalize_keys` brings all of that to our names, which are
torchvision's, the official ResNeSt repository's and timm's (see README).

Importing this module loads no framework: torch is imported when a file is read.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from .errors import CheckpointError, UnsafeCheckpointError, shorten

TORCH_SUFFIXES = (".pth", ".pt", ".th", ".bin", ".ckpt", ".tar")  # .tar: timm's model_best.pth.tar
SAFETENSORS_SUFFIX = ".safetensors"
# Where training scripts put the weights, in the order they are looked for: plain weights
# before an EMA copy, as timm's own loader prefers.
NESTED_KEYS = ("state_dict", "model", "module", "state_dict_ema")
PREFIXES = ("module.", "_orig_mod.")  # nn.DataParallel / DistributedDataParallel, torch.compile
RENAMES = {"linear.": "fc."}  # pytorch_resnet_cifar10's classifier


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


def find_state_dict(obj, key: str | None = None, source: str = "checkpoint") -> tuple[dict, str | None]:
    """The state_dict inside a loaded checkpoint and the key it was found under (None: the
    file is the state_dict). `key` picks one explicitly (e.g. "state_dict_ema")."""
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = ", ".join(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{source} has no entry {key!r}; it holds: {found}")
        if not _is_state_dict(obj[key]):
            raise CheckpointError(f"{source}[{key!r}] is not a mapping of names to tensors")
        return dict(obj[key]), key
    if _is_state_dict(obj):
        return dict(obj), None
    if isinstance(obj, Mapping):
        for k in NESTED_KEYS:
            if _is_state_dict(obj.get(k)):
                return dict(obj[k]), k
        held = ", ".join(f"{k} ({type(v).__name__})" for k, v in list(obj.items())[:12])
        raise CheckpointError(
            f"{source} holds no state_dict: expected a mapping of names to tensors, at the top or "
            f"under one of {', '.join(NESTED_KEYS)}; it holds {held or 'nothing'}"
        )
    raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state_dict")


def normalize_keys(state_dict: Mapping) -> tuple["OrderedDict", list[str]]:
    """The state_dict under our names, and a note per change made: prefixes stripped
    (repeatedly: DataParallel around a compiled model), known renames applied."""
    notes = []
    items = list(state_dict.items())
    for prefix in PREFIXES * 2:
        if items and all(k.startswith(prefix) for k, _ in items):
            items = [(k[len(prefix):], v) for k, v in items]
            notes.append(f"stripped the {prefix!r} prefix")
    keys = {k for k, _ in items}
    for old, new in RENAMES.items():
        if any(k.startswith(old) for k in keys) and not any(k.startswith(new) for k in keys):
            items = [(new + k[len(old):] if k.startswith(old) else k, v) for k, v in items]
            notes.append(f"renamed {old}* to {new}*")
    return OrderedDict(items), notes
