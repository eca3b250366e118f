"""LiteRT (TFLite) from Keras, run in the LiteRT interpreter (`ai-edge-litert`).

Made by Keras' own path, `model.export(path, format="litert")`: Keras writes a SavedModel of
the model's call (its ExportArchive) and TensorFlow's TFLite converter turns it into a
flatbuffer. The quantized files come from the same converter:

- "float16": weights stored in float16 (half the file), computed in float32 on the CPU;
- "dynamic-int8": dynamic-range quantization, weights in int8 (a quarter of the file) and
  activations quantized to int8 on the fly where a kernel has an int8 path.

The input is NHWC. Its free axes are -1 in the file's shape signature, and the interpreter
resizes them on demand (`resize_tensor_input`), so batch, height and width stay free as in the
other formats; a fixed --size leaves only the batch free.
"""

from __future__ import annotations

from pathlib import Path

from . import signatures


def converter_options(quantize: str) -> dict:
    """The TFLite converter's settings for `quantize` (passed through Keras' export)."""
    import tensorflow as tf

    if quantize == "none":
        return {}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}  # alone: dynamic-range int8
    if quantize == "float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    return options


def write(model, framework: str, path: Path, size, quantize: str = "none") -> None:
    model.export(str(path), format="litert", verbose=False,
                 input_signature=[signatures.keras_input_spec(model.spec, size)], **converter_options(quantize))


def load(path: Path):
    """x -> the file's output, in the LiteRT interpreter (XNNPACK on the CPU, its default);
    the input is resized whenever x's shape changes."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source, = interpreter.get_input_details()
    result = interpreter.get_output_details()[0]["index"]

    def run(x):
        if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
            interpreter.resize_tensor_input(source["index"], x.shape, strict=True)  # only free axes
            interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(result).copy()

    return run


def runtime() -> str:
    from importlib import metadata

    return f"ai-edge-litert {metadata.version('ai-edge-litert')}"
