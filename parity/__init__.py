"""The one package that imports both frameworks: weight porting, comparison, checkpoints, CLI.

    >>> import parity, resnet_torch
    >>> torch_model = parity.testing.randomize_torch(resnet_torch.resnet50(), seed=0)
    >>> keras_model = parity.torch_to_keras(torch_model)
    >>> report = parity.compare(torch_model, keras_model, images)   # images: NCHW
    >>> print(report.table()); assert report.ok
    >>> state_dict, name = parity.load_checkpoint("resnet20-12fca82f.th")     # read safely, arch inferred
    >>> parity.convert_file("resnet20-12fca82f.th", "resnet20.keras")         # written atomically, verified
    >>> parity.export_onnx("resnet20.keras", "resnet20.onnx", framework="keras")

Submodules load torch before TensorFlow (importing torchvision after TensorFlow crashes), and
nothing heavy is imported until an attribute is used, so `parity.cli list` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "torch_to_keras": "porting",
    "keras_to_torch": "porting",
    "state_dict_to_keras": "porting",
    "keras_to_state_dict": "porting",
    "WeightMismatchError": "porting",
    "compare": "comparison",
    "ParityReport": "comparison",
    "TapResult": "comparison",
    "randomize_torch": "testing",
    "randomize_state_dict": "testing",
    "assert_parity": "testing",
    "load_checkpoint": "convert",
    "convert_file": "convert",
    "VerificationError": "convert",
    "CheckpointError": "checkpoints",
    "UnsafeCheckpointError": "checkpoints",
    "ArchitectureError": "identify",
    "identify": "identify",
    "export_onnx": "onnx_export",
}

_SUBMODULES = {
    "checkpoints", "cli", "comparison", "convert", "distributed", "files", "identify", "keras_io", "labels",
    "onnx_export", "porting", "predict", "preprocess", "taps", "testing", "train_parity", "training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'parity' has no attribute {name!r}")
