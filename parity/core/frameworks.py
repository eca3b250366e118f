"""Both frameworks, imported in the one order that works in a single process.

torch and triton (which torch and torchvision load lazily) must be loaded before TensorFlow:
loaded after it, they crash the process with a segmentation fault. Importing resnet_torch
loads both; Keras/TensorFlow come last. Every parity module takes its frameworks from here,
as `from parity.core.frameworks import keras, torch`; this module itself imports nothing until
one is asked for, so light modules can name FRAMEWORKS.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

FRAMEWORKS = ("torch", "keras")


def keras_backend() -> str:
    """The Keras backend in use, or the one Keras will use once imported (KERAS_BACKEND, else
    the "backend" of ~/.keras/keras.json, else "tensorflow", as Keras decides it), without
    importing Keras."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def environment() -> dict:
    """What ran a comparison: the Keras backend and the versions of the frameworks loaded."""
    from importlib import metadata

    versions = {}
    for package in ("torch", "keras", "tensorflow", "jax", "numpy"):
        if package in sys.modules:
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                versions[package] = getattr(sys.modules[package], "__version__", "unknown")
    return {"backend": keras_backend(), "versions": versions}


def __getattr__(name: str):
    if name not in FRAMEWORKS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    torch = importlib.import_module("torch")
    importlib.import_module("resnet_torch")  # loads triton before TensorFlow: see resnet_torch
    return torch if name == "torch" else importlib.import_module("keras")
