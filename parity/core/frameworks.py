"""Both frameworks, imported in the one order that works in a single process.

torch and triton (which torch and torchvision load lazily) must be loaded before TensorFlow:
loaded after it, they crash the process with a segmentation fault. Importing resnet_torch
loads both; Keras/TensorFlow come last. Every parity module takes its frameworks from here,
as `from parity.core.frameworks import keras, torch`; this module itself imports nothing until
one is asked for, so light modules can name FRAMEWORKS.
"""

from __future__ import annotations

import importlib

FRAMEWORKS = ("torch", "keras")


def __getattr__(name: str):
    if name not in FRAMEWORKS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    torch = importlib.import_module("torch")
    importlib.import_module("resnet_torch")  # loads triton before TensorFlow: see resnet_torch
    return torch if name == "torch" else importlib.import_module("keras")
