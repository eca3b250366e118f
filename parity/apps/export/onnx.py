"""ONNX from either framework, run in ONNX Runtime.

- PyTorch: `torch.onnx.export(..., dynamo=True)`, the torch.export-based exporter (the default
  since PyTorch 2.9; it needs `onnxscript`), with torch.export.Dim ranges for the free axes
  (signatures.torch_dynamic_shapes). NCHW input.
- Keras: `model.export(path, format="onnx")`, which on the TensorFlow backend runs tf2onnx,
  with an InputSpec whose free axes are None. NHWC input.

Both name the input "input" and the free axes "batch", "height" and "width" (tf2onnx calls
them "unk__N": renamed here). The file must pass onnx.checker before it is run.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from . import signatures

AXIS_NAMES = {"NCHW": ("batch", None, "height", "width"), "NHWC": ("batch", "height", "width", None)}


def write(model, framework: str, path: Path, size, quantize: str = "none") -> None:
    import onnx

    from ...core.frameworks import torch

    spec = model.spec
    if framework == "torch":
        x = torch.from_numpy(signatures.trace_input(spec, size))
        torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False, verbose=False,
                          input_names=["input"], output_names=["output"],
                          dynamic_shapes=signatures.torch_dynamic_shapes(spec, size))
    else:
        with quiet_logger("tf2onnx"):
            model.export(str(path), format="onnx", verbose=False,
                         input_signature=[signatures.keras_input_spec(spec, size)])
        name_free_axes(path, AXIS_NAMES["NHWC"])
    onnx.checker.check_model(str(path), full_check=True)


@contextlib.contextmanager
def quiet_logger(name: str):
    """Errors only from the logger `name` while the block runs. tf2onnx logs a traceback for
    each optimisation it skips: its einsum optimiser cannot read the "..." of the classifier's
    einsum (resnet_tf.layers.Dense), and the einsum is exported as it is."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def name_free_axes(path: Path, names) -> None:
    """Give the input's free axes their names, and the output's batch axis."""
    import onnx

    graph = onnx.load(str(path))
    value_names = [(graph.graph.input[0], names)] + [(out, ("batch",)) for out in graph.graph.output]
    for value, axis_names in value_names:
        for dim, name in zip(value.type.tensor_type.shape.dim, axis_names):
            if name and not dim.HasField("dim_value"):
                dim.dim_param = name
    onnx.save(graph, str(path))


def load(path: Path):
    """x -> the file's output, in ONNX Runtime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def runtime() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"
