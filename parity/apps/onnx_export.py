"""ONNX export from either framework, checked in ONNX Runtime against both.

Exporters (both offline, both the frameworks' maintained paths):
- PyTorch: `torch.onnx.export(..., dynamo=True)`, the torch.export-based exporter that is the
  default since PyTorch 2.9 (it needs `onnxscript`); the TorchScript exporter is deprecated.
  torch._dynamo must load before TensorFlow like triton does, which parity.core.frameworks ensures.
- Keras: `model.export(path, format="onnx")`, which with the TensorFlow backend runs tf2onnx.

The batch axis is dynamic (named "batch") in both; the spatial size is fixed at export. The
PyTorch export takes NCHW input, the Keras export NHWC, each its framework's own layout. The
file is checked with onnx.checker, run in ONNX Runtime at batch sizes other than the one it
was traced with, and compared with both frameworks (1e-5 relative, as the parity contract);
only then does it take its name.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.frameworks import FRAMEWORKS, environment, keras, torch  # torch before TensorFlow: see frameworks

import resnet_spec as rs  # noqa: E402

from ..core.report import EVAL_TOLERANCE, ParityReport, VerificationError, tap_result  # noqa: E402
from ..files.atomic import atomic_path, check_destination  # noqa: E402
from ..files.loading import load_models  # noqa: E402

EXPORT_BATCH = 2
CHECK_BATCHES = (1, 3)  # neither is the traced batch: the axis must really be dynamic


@dataclass
class OnnxExport:
    dst: Path
    spec: rs.ResNetSpec
    framework: str
    report: ParityReport


def _export_torch(model, x: np.ndarray, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        model, (torch.from_numpy(x),), str(path), dynamo=True, external_data=False, verbose=False,
        input_names=["input"], output_names=["output"], dynamic_shapes=({0: batch},),
    )


def _export_keras(model, x: np.ndarray, path: Path) -> None:
    import onnx

    shape = (None, *x.shape[2:], x.shape[1])  # NHWC, any batch
    model.export(str(path), format="onnx", verbose=False,
                 input_signature=[keras.InputSpec(shape=shape, dtype="float32", name="input")])
    # tf2onnx names the free axis "unk__N"; call it what it is.
    graph = onnx.load(str(path))
    for value in list(graph.graph.input) + list(graph.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = "batch"
    onnx.save(graph, str(path))


def export_onnx(source, dst, framework: str = "torch", arch=None, num_classes=None,
                size: tuple[int, int] | None = None, force: bool = False, seed: int = 0) -> OnnxExport:
    """Export `source` (a file or a variant name, see files.loading.load_models; a variant gets
    seeded random weights) from `framework` to the ONNX file `dst`, check it in ONNX Runtime
    against both frameworks, and keep it only if it agrees (else VerificationError with the
    report). `size` (H, W) defaults to the variant's own."""
    import onnx
    import onnxruntime as ort

    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    check_destination(dst, force)
    models = load_models(source, FRAMEWORKS, arch, num_classes, seed=seed)
    torch_model, keras_model = models["torch"], models["keras"]
    spec = torch_model.spec
    h, w = size or (spec.input_size, spec.input_size)
    rng = np.random.default_rng(seed)
    trace = rng.standard_normal((EXPORT_BATCH, spec.in_channels, h, w)).astype(np.float32)

    name = f"{spec.name}: ONNX from {framework}, in ONNX Runtime"
    report = ParityReport(name, "eval", (max(CHECK_BATCHES), spec.in_channels, h, w), environment=environment())
    with atomic_path(dst, force) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' deprecation and tracing notes
            (_export_torch if framework == "torch" else _export_keras)(
                torch_model if framework == "torch" else keras_model, trace, tmp)
        onnx.checker.check_model(str(tmp), full_check=True)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        for batch in CHECK_BATCHES:
            x = rng.standard_normal((batch, spec.in_channels, h, w)).astype(np.float32)
            nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            got = session.run(None, {session.get_inputs()[0].name: x if framework == "torch" else nhwc})[0]
            with torch.no_grad():
                torch_out = torch_model.eval()(torch.from_numpy(x)).numpy()
            # Logits or pooled features: (N, C) in both layouts.
            for reference, value in (("torch", torch_out), ("keras", keras.ops.convert_to_numpy(keras_model(nhwc, training=False)))):
                report.rows.append(tap_result(f"vs {reference}, batch {batch}", "output", np.asarray(value), got,
                                              EVAL_TOLERANCE))
        if not report.ok:
            raise VerificationError(report, Path(dst), f"the ONNX model from {framework}")
    return OnnxExport(Path(dst), spec, framework, report)

