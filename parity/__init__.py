"""The one package that imports both frameworks: weight porting, comparison, checkpoints, CLI.

    >>> import parity, resnet_torch
    >>> torch_model = parity.testing.randomize_torch(resnet_torch.resnet50(), seed=0)
    >>> keras_model = parity.torch_to_keras(torch_model)
    >>> report = parity.compare(torch_model, keras_model, images)   # images: NCHW
    >>> print(report.table()); assert report.ok
    >>> state_dict, name = parity.load_checkpoint("resnet20-12fca82f.th")     # read safely, arch inferred
    >>> parity.convert_file("resnet20-12fca82f.th", "resnet20.keras")         # written atomically, verified
    >>> parity.export("resnet20.keras", "resnet20.onnx", framework="keras")         # checked in ONNX Runtime
    >>> parity.export("resnet50.pth", "resnet50.tflite", quantize="dynamic-int8")   # in the LiteRT interpreter

Floors, each importing only the ones below it (docs/architecture.md):

    core   porting, taps, metrics, report, comparison, training, precision, testing, frameworks
    files  errors, atomic, checkpoints, identify, keras_io, keras_archive, loading, convert
    apps   preprocess, labels, predict, train_parity, distributed, export (ONNX, LiteRT, SavedModel, pt2)
    cli    the resnet-parity command, one module per subcommand

This module is the front door: the names below resolve to those floors when first used, so
`import parity` stays light and `parity.cli list` loads neither framework.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "torch_to_keras": "core.porting",
    "keras_to_torch": "core.porting",
    "state_dict_to_keras": "core.porting",
    "keras_to_state_dict": "core.porting",
    "WeightMismatchError": "core.porting",
    "compare": "core.comparison",
    "ParityReport": "core.report",
    "TapResult": "core.report",
    "VerificationError": "core.report",
    "PrecisionUnavailable": "core.precision",
    "randomize_torch": "core.testing",
    "randomize_state_dict": "core.testing",
    "assert_parity": "core.testing",
    "load_checkpoint": "files.loading",
    "load_models": "files.loading",
    "convert_file": "files.convert",
    "CheckpointError": "files.errors",
    "UnsafeCheckpointError": "files.errors",
    "ArchitectureError": "files.identify",
    "identify": "files.identify",
    "export": "apps.export.flow",
    "export_models": "apps.export.flow",
    "export_onnx": "apps.export.flow",
    "ExportError": "apps.export.formats",
}

_FLOORS = {"core", "files", "apps", "cli"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _FLOORS or name == "testing":
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'parity' has no attribute {name!r}")
