"""The deployment runtimes against eager PyTorch and eager Keras, and against this CPU's roofline.

    python -m benchmarks.deploy [--quick]

resnet18 and resnet50 (seeded random weights), 224x224, batches 1 and 16, all in one process,
interleaved (timing.py):

- ONNX Runtime on the file exported from PyTorch (parity.export, dynamic sizes);
- LiteRT's interpreter with XNNPACK (its default CPU delegate) on the float32 .tflite file;
- the SavedModel's serving_default signature (tf.saved_model.load, as TF Serving runs it);
- the torch.export program (.pt2, torch.export.load) and torch.compile of resnet_torch;
- eager resnet_torch (NCHW; the reference of the ratios) and eager resnet_tf (a plain call).

The roofline is the best float32 matrix-multiplication rate of the installed libraries
measured in the same run: torch.mm, TensorFlow's matmul in a tf.function (oneDNN where
TensorFlow turns it on) and ONNX Runtime's MatMul, square n x n. Every runtime's rate is
2 x multiply-accumulates (resnet_spec.count_macs) per second, and its fraction of the
roofline. Prints one JSON object: {"roofline": [...], "rows": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .inference import SIZE, result_rows
from .timing import interleaved, parse_inference_arguments

MODELS = ["resnet18", "resnet50"]
BATCHES = [1, 16]
GEMM_SIDE = 2048  # 17 GFLOP a product: long enough to time, short enough to repeat
REFERENCE = "resnet_torch eager"


class Batch(NamedTuple):
    """One batch of images in each form a runtime takes."""

    nchw: np.ndarray
    torch: object  # the same memory as a torch tensor
    nhwc: np.ndarray


def ort_options():
    import onnxruntime as ort

    options = ort.SessionOptions()
    # ONNX Runtime's idle threads spin by default, stealing the cores from the interleaved
    # candidates; without spinning every candidate gets the machine in turn.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def roofline(side: int, repeats: int) -> list[dict]:
    """The float32 GEMM rate of each library, GFLOP/s, best first."""
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import torch
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((side, side)).astype(np.float32) for _ in range(2))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    fa, fb = tf.constant(a), tf.constant(b)
    tf_matmul = tf.function(tf.linalg.matmul)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [side, side])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [side, side])],
        [onnx.numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), ort_options(), providers=["CPUExecutionProvider"])
    candidates = {
        "torch.mm": lambda: torch.mm(ta, tb),
        "tensorflow matmul": lambda: tf_matmul(fa, fb).numpy(),
        "onnxruntime MatMul": lambda: session.run(None, {"a": a}),
    }
    seconds = interleaved(candidates, repeats)
    flops = 2 * side**3
    rates = [{"library": k, "side": side, "gflops": flops / s / 1e9} for k, s in seconds.items()]
    return sorted(rates, key=lambda r: -r["gflops"])


def runtimes(name: str, folder: Path) -> dict:
    """Candidate name -> (Batch -> output): every runtime on the same seeded weights."""
    import torch

    import keras
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    import parity

    models = parity.load_models(name)
    torch_model, keras_model = models["torch"], models["keras"]
    paths = {fmt: folder / f"{name}{suffix}" for fmt, suffix in
             (("onnx", ".onnx"), ("tflite", ".tflite"), ("pt2", ".pt2"), ("savedmodel", "_savedmodel/"))}
    for fmt, path in paths.items():
        parity.export_models(models, str(path), format=fmt)  # checked, as a user gets it

    session = ort.InferenceSession(str(paths["onnx"]), ort_options(), providers=["CPUExecutionProvider"])
    interpreter = Interpreter(model_path=str(paths["tflite"]), num_threads=os.cpu_count())
    serve = tf.saved_model.load(str(paths["savedmodel"])).signatures["serving_default"]
    program = torch.export.load(str(paths["pt2"])).module()
    compiled = torch.compile(torch_model)

    def litert(x):
        source = interpreter.get_input_details()[0]
        if tuple(source["shape"]) != x.shape:
            interpreter.resize_tensor_input(source["index"], x.shape, strict=True)
            interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return {
        REFERENCE: lambda b: torch_model(b.torch),
        "torch.compile": lambda b: compiled(b.torch),
        "torch.export (.pt2)": lambda b: program(b.torch),
        "onnxruntime": lambda b: session.run(None, {"input": b.nchw}),
        "LiteRT XNNPACK": lambda b: litert(b.nhwc),
        "SavedModel": lambda b: serve(input=tf.constant(b.nhwc))["output_0"].numpy(),
        "resnet_tf eager": lambda b: keras.ops.convert_to_numpy(keras_model(b.nhwc, training=False)),
    }


def bench(models, batches, repeats, gemm_side) -> dict:
    import torch

    import resnet_spec as rs
    import resnet_torch  # noqa: F401  (torch and triton before TensorFlow)

    torch.set_grad_enabled(False)
    peak = roofline(gemm_side, repeats)
    best = peak[0]["gflops"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            fns = runtimes(name, Path(tmp))
            gflop = 2 * rs.count_macs(rs.get(name), SIZE) / 1e9
            for batch in batches:
                x = np.random.default_rng(0).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)
                images = Batch(x, torch.from_numpy(x), np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
                candidates = {k: (lambda f=f: f(images)) for k, f in fns.items()}
                for row in result_rows(name, batch, interleaved(candidates, repeats), REFERENCE):
                    row["gflops"] = row["images_per_s"] * gflop
                    row["roofline_fraction"] = row["gflops"] / best
                    rows.append(row)
                print(f"deploy {name} batch {batch} done", file=sys.stderr, flush=True)
    return {"roofline": peak, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gemm-side", type=int, default=GEMM_SIDE)
    args = parse_inference_arguments(parser, argv, MODELS, BATCHES, "resnet18")
    print(json.dumps(bench(args.models, args.batches, args.repeats, args.gemm_side)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
