"""Both frameworks, imported in the one order that works in a single process.

torch and triton (which torch and torchvision load lazily) must be loaded before TensorFlow:
loaded after it, they crash the process with a segmentation fault. Importing resnet_torch
loads both; Keras/TensorFlow come last. Every parity module takes its frameworks from here.
"""

import torch

import resnet_torch  # noqa: F401  (loads triton before TensorFlow; see resnet_torch/__init__.py)

import keras  # noqa: E402

__all__ = ["keras", "torch"]
