"""The deployment formats, what each can be made from, and how a destination names one.

Light: this module loads no framework, so the command line can refuse a bad request (an
unknown format, a destination that does not say which, a quantization the format lacks, a
framework it cannot come from) before anything is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...core.frameworks import keras_backend
from ...files.atomic import check_destination
from .report import QUANTIZATION_BOUNDS

NONE = "none"
QUANTIZATIONS = (NONE, *QUANTIZATION_BOUNDS)  # "none", "float16", "dynamic-int8"


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says what was expected."""


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str | None  # None: a directory, named by --format or a trailing separator
    frameworks: tuple[str, ...]  # the first is the default
    quantizations: tuple[str, ...]
    what: str  # for messages and the command's help


FORMATS = {
    f.name: f
    for f in (
        Format("onnx", ".onnx", ("torch", "keras"), (NONE,), "ONNX, run in ONNX Runtime"),
        Format("tflite", ".tflite", ("keras",), QUANTIZATIONS, "LiteRT (TFLite), run in the LiteRT interpreter"),
        Format("savedmodel", None, ("keras",), (NONE,), "TensorFlow SavedModel (a directory), run by tf.saved_model.load"),
        Format("pt2", ".pt2", ("torch",), (NONE,), "torch.export ExportedProgram, run by torch.export.load"),
    )
}
BY_SUFFIX = {f.suffix: f for f in FORMATS.values() if f.suffix}


def is_directory_name(dst: str | os.PathLike) -> bool:
    """A destination written with a trailing separator ("out/resnet50/") names a directory."""
    text = os.fspath(dst)
    return text.endswith(os.sep) or (os.altsep is not None and text.endswith(os.altsep))


def format_of(dst: str | os.PathLike, name: str | None = None) -> Format:
    """The format asked for (`name`), or the one `dst` names: its suffix (.onnx, .tflite, .pt2),
    or a trailing separator for a SavedModel directory. A name that contradicts the suffix is
    an error, as is a destination that names no format."""
    if name is not None and name not in FORMATS:
        raise ExportError(f"unknown format {name!r}; expected one of {', '.join(FORMATS)}")
    text = os.fspath(dst)
    suffix = os.path.splitext(text.rstrip(os.sep + (os.altsep or "")))[1].lower()
    if is_directory_name(text):
        by_name = "savedmodel"
    else:
        by_name = BY_SUFFIX[suffix].name if suffix in BY_SUFFIX else None
    if name is None and by_name is None:
        raise ExportError(
            f"{text}: cannot tell the format from the name; expected a name ending in "
            f"{', '.join(BY_SUFFIX)}, a directory name ending in '{os.sep}' for a SavedModel, or --format"
        )
    if name is not None and by_name is not None and name != by_name:
        raise ExportError(f"{text} names the {by_name} format but --format is {name}; expected a name that agrees")
    fmt = FORMATS[name or by_name]
    if fmt.suffix is None and suffix in BY_SUFFIX:
        raise ExportError(f"{text}: a SavedModel is a directory; expected a name without {suffix}")
    return fmt


def framework_for(fmt: Format, framework: str | None, quantize: str) -> str:
    """The framework to export from (the format's default when None); an ExportError when the
    format cannot come from `framework` or has no such quantization."""
    framework = framework or fmt.frameworks[0]
    if framework not in fmt.frameworks:
        raise ExportError(f"{fmt.name} files are made from {' or '.join(fmt.frameworks)}, not {framework}; "
                          f"expected --framework {fmt.frameworks[0]}")
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantize!r}; expected one of {', '.join(QUANTIZATIONS)}")
    if quantize not in fmt.quantizations:
        raise ExportError(f"{fmt.name} has no {quantize} quantization; expected --quantize none "
                          f"(quantized files: tflite, with {', '.join(q for q in QUANTIZATIONS if q != NONE)})")
    return framework


def check_request(dst, format: str | None, framework: str | None, quantize: str, force: bool):
    """(format, framework) for the request, or the error that says what was wrong; cheap, so
    that it runs before any model is built. The destination must not exist unless `force`."""
    fmt = format_of(dst, format)
    framework = framework_for(fmt, framework, quantize)
    if framework == "keras" and keras_backend() != "tensorflow":
        raise ExportError(f"{fmt.name} files are made by Keras' TensorFlow backend, and Keras runs on "
                          f"{keras_backend()} here; expected KERAS_BACKEND=tensorflow")
    check_destination(dst, force, directory=fmt.suffix is None)
    return fmt, framework


def input_layout(framework: str) -> str:
    """Every export takes its framework's own layout: NCHW from PyTorch, NHWC from Keras."""
    return "NCHW" if framework == "torch" else "NHWC"
