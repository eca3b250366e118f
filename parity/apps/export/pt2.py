"""torch.export ExportedProgram (.pt2) from PyTorch, run by torch.export.load.

`torch.export.export` with torch.export.Dim ranges for the free axes (signatures.py: height
and width from `smallest_side`, 33 for the ImageNet networks), then `torch.export.save`. The
guards torch.export cannot prove for every size in the range (the ceil-mode average pools of
ResNeSt and ResNet-D shortcuts) stay in the program as runtime checks
(`prefer_deferred_runtime_asserts_over_guards`) rather than refusing the export; they hold for
every size. NCHW input.

torch.export.load unpickles tensor subclasses and custom objects if a file holds any; the
programs written here hold plain tensors only, and parity loads no .pt2 but the one it just
wrote.
"""

from __future__ import annotations

from pathlib import Path

from . import signatures


def write(model, framework: str, path: Path, size, quantize: str = "none") -> None:
    from ...core.frameworks import torch

    spec = model.spec
    x = torch.from_numpy(signatures.trace_input(spec, size))
    program = torch.export.export(model.eval(), (x,), dynamic_shapes=signatures.torch_dynamic_shapes(spec, size),
                                  prefer_deferred_runtime_asserts_over_guards=True)
    torch.export.save(program, str(path))


def load(path: Path):
    """x -> the program's output."""
    from ...core.frameworks import torch

    module = torch.export.load(str(path)).module()

    def run(x):
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run


def runtime() -> str:
    from ...core.frameworks import torch

    return f"torch {torch.__version__}"
