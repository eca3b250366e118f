"""Both frameworks, imported in the one order that works in a single process.

Loading triton (which torch and torchvision import lazily) after TensorFlow crashes the process
with a segmentation fault, and so does importing torchvision after TensorFlow. So torch comes
first, triton right after it where it is installed, and Keras/TensorFlow last. Every parity
module takes its frameworks from here.
"""

import importlib.util

import torch

if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401  (loaded now, before TensorFlow, not lazily after it)

import keras  # noqa: E402

__all__ = ["keras", "torch"]
