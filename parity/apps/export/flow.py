"""Export, check, then publish: the one path every deployment format takes.

    >>> result = parity.export("resnet50.pth", "resnet50.tflite", quantize="dynamic-int8")
    >>> print(result.report.table())

1. The request is checked before anything is built (formats: the format, the framework it
   comes from, the quantization; the destination, which must not exist unless `force`).
2. The models come from the one loader (parity.files.loading.load_models): a checkpoint, a
   Keras file or a variant name (seeded random weights).
3. The file is written under a temporary name beside the destination (parity.files.atomic; a
   SavedModel is a directory), loaded back in its own runtime and run on the check inputs
   (images): random images at sizes it was not traced with, compared with PyTorch and with
   Keras; for a quantized file also real images, compared with PyTorch float32, whose top-1
   and top-5 classes must agree often enough (report.QUANTIZATION_BOUNDS).
4. Only a file that holds every bound takes the destination's name; otherwise a
   VerificationError carries the report and nothing is left behind.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import resnet_spec as rs

from ...core.frameworks import FRAMEWORKS, environment, keras, torch  # torch before TensorFlow: see frameworks
from ...core.metrics import topk_agreement
from ...core.report import VerificationError, tap_result
from ...core.taps import nhwc
from ...files.atomic import atomic_directory, atomic_path
from ...files.loading import load_models
from . import formats, images, litert, onnx, pt2, savedmodel, signatures
from .report import QUANTIZATION_BOUNDS, Agreement, ExportReport, max_error_bound

# Each format's module writes its files and loads them back in its runtime (imported there).
WRITERS = {"onnx": onnx, "tflite": litert, "savedmodel": savedmodel, "pt2": pt2}
REAL_BATCH = 8  # real images run in batches of this many: the largest networks at 224 stay in memory


@dataclass
class ExportResult:
    dst: Path
    spec: rs.ResNetSpec
    format: str
    framework: str
    quantize: str
    size: tuple[int, int] | None  # the fixed height and width, or None: free
    report: ExportReport

    @property
    def free_axes(self) -> tuple[str, ...]:
        return signatures.free_axes(self.size)

    def summary(self) -> str:
        """One line for the user: what was written and what it takes."""
        layout = formats.input_layout(self.framework)
        if self.size is not None:
            fixed = f"; height and width fixed at {self.size[0]}x{self.size[1]}"
        elif self.format == "pt2":  # the program's range (signatures.smallest_side)
            fixed = f" (height and width from {signatures.smallest_side(self.spec)})"
        else:
            fixed = ""
        return (f"wrote {self.dst}: {formats.FORMATS[self.format].what}; from {self.framework}, input {layout}, "
                f"dynamic {', '.join(self.free_axes)}{fixed}")


def export(source, dst, format: str | None = None, framework: str | None = None,
           size: tuple[int, int] | None = None, quantize: str = "none", force: bool = False,
           arch: str | None = None, num_classes: int | None = None, key: str | None = None,
           seed: int = 0, prefix: str | None = None) -> ExportResult:
    """Export `source` (a checkpoint, a Keras file or a variant name: see
    parity.files.loading.load_models, which `arch`, `num_classes`, `key` and `prefix` are
    passed to) to `dst` in `format` (default: from dst's name), from
    `framework` (default: the format's first), check it in its runtime and publish it only if
    it holds its bounds (see export_models)."""
    formats.check_request(dst, format, framework, quantize, force)  # before loading anything
    models = load_models(source, FRAMEWORKS, arch, num_classes, key, seed=seed, prefix=prefix)
    return export_models(models, dst, format, framework, size, quantize, force, seed)


def export_models(models: dict, dst, format: str | None = None, framework: str | None = None,
                  size: tuple[int, int] | None = None, quantize: str = "none", force: bool = False,
                  seed: int = 0) -> ExportResult:
    """export() for models already loaded: {"torch": a resnet_torch model, "keras": the
    resnet_tf model holding the same weights}, as load_models gives them.

    `size` (H, W) fixes the input's height and width; by default they are free, as is the
    batch. `quantize` ("float16", "dynamic-int8") applies to tflite. Raises formats.ExportError
    for a request that cannot be made, atomic.OutputExistsError unless `force`, and
    VerificationError (with the report) when the file disagrees with the frameworks."""
    fmt, framework = formats.check_request(dst, format, framework, quantize, force)
    spec = models["torch"].spec
    size = signatures.check_size(spec, size)
    if spec.features_only:
        raise formats.ExportError(f"{spec.name} is a features_only backbone with one output per stage; "
                                  "expected a model with one output (logits or pooled features)")
    if quantize != formats.NONE and spec.in_channels != 3:
        raise formats.ExportError(f"quantized files are checked on RGB photographs; {spec.name} takes "
                                  f"{spec.in_channels} channels, expected 3")
    module = WRITERS[fmt.name]
    publish = atomic_path if fmt.suffix is not None else atomic_directory
    with publish(dst, force) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' deprecation and tracing notes
            module.write(models[framework], framework, tmp, size, quantize)
        report = verify(module.load(tmp), models, fmt, framework, quantize, size, seed)
        report.environment["runtime"] = module.runtime()
        if not report.ok:
            raise VerificationError(report, Path(dst), f"the {fmt.name} file from {framework}")
    return ExportResult(Path(dst), spec, fmt.name, framework, quantize, size, report)


def export_onnx(source, dst, framework: str = "torch", arch: str | None = None, num_classes: int | None = None,
                size: tuple[int, int] | None = None, force: bool = False, seed: int = 0) -> ExportResult:
    """ONNX from either framework: export(..., format="onnx")."""
    return export(source, dst, "onnx", framework, size, force=force, arch=arch, num_classes=num_classes, seed=seed)


def torch_output(model, x: np.ndarray) -> np.ndarray:
    """The PyTorch model's eval-mode output for NCHW images (a feature map as NHWC)."""
    with torch.no_grad():
        return nhwc(model.eval()(torch.from_numpy(x)).numpy())


def keras_output(model, x: np.ndarray) -> np.ndarray:
    """The Keras model's inference output for the same NCHW images (NHWC inside)."""
    return keras.ops.convert_to_numpy(model(np.ascontiguousarray(nhwc(x)), training=False))


def verify(run, models: dict, fmt: formats.Format, framework: str, quantize: str, size, seed: int = 0) -> ExportReport:
    """The report of `run` (the file in its runtime, taking the framework's layout) against both
    frameworks on random inputs, and for a quantized file against PyTorch float32 on real
    images."""
    torch_model, keras_model = models["torch"], models["keras"]
    spec = torch_model.spec
    layout = formats.input_layout(framework)
    bound = max_error_bound(quantize)
    report = ExportReport(spec.name, fmt.name, framework, quantize, layout, environment=environment())

    def in_file(x):  # NCHW images as the file takes them; its output as the references give it
        got = run(x if layout == "NCHW" else np.ascontiguousarray(nhwc(x)))
        return nhwc(got) if layout == "NCHW" else got

    for name, x in images.random_inputs(spec, size, seed):
        got = in_file(x)
        for reference, expected in (("torch", torch_output(torch_model, x)), ("keras", keras_output(keras_model, x))):
            report.rows.append(tap_result(f"vs {reference}, {name}", "output", expected, got, bound))
    if quantize != formats.NONE:
        real = images.real_images(spec, size)
        batches = [real[i:i + REAL_BATCH] for i in range(0, len(real), REAL_BATCH)]
        got = np.concatenate([in_file(x) for x in batches])
        expected = np.concatenate([torch_output(torch_model, x) for x in batches])
        name = f"vs torch, {len(real)} real images, {real.shape[2]}x{real.shape[3]}"
        report.rows.append(tap_result(name, "output", expected, got, bound))
        top1, top5 = topk_agreement(expected, got, 5)
        report.agreements.append(Agreement("vs torch float32, real images", len(real), top1, top5,
                                           QUANTIZATION_BOUNDS[quantize]))
    return report
