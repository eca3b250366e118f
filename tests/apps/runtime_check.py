"""Run exported files as a user of one runtime would, in a fresh process that loads that runtime
alone: python runtime_check.py RUNTIME JOBS.json

RUNTIME is onnxruntime, litert, savedmodel or pt2. JOBS.json lists {"file", "inputs": [.npy],
"outputs": .npz}; each file is loaded once and run on every input (in its own layout), and its
outputs are written to the .npz with what the runtime says of the file's input. The last line
printed is JSON: the packages of FORBIDDEN[RUNTIME] that got loaded (none, or the test fails).

For a SavedModel, Keras and resnet_tf are made unimportable first (TensorFlow imports Keras
by itself when Keras is installed, and copes when it cannot): the directory must load and run
with TensorFlow alone.
"""

import json
import sys

RUNTIME = sys.argv[1]
FORBIDDEN = {
    "onnxruntime": ("torch", "tensorflow", "keras", "resnet_torch", "resnet_tf", "parity"),
    "litert": ("torch", "tensorflow", "keras", "resnet_torch", "resnet_tf", "parity"),
    "savedmodel": ("torch", "keras", "tf_keras", "resnet_torch", "resnet_tf", "parity"),
    "pt2": ("tensorflow", "keras", "resnet_torch", "resnet_tf", "parity"),
}[RUNTIME]
if RUNTIME == "savedmodel":
    for name in ("keras", "tf_keras", "resnet_tf"):
        sys.modules[name] = None  # `import keras` now raises ImportError

import numpy as np  # noqa: E402


def onnxruntime_runner(path):
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (source,) = session.get_inputs()
    return (lambda x: session.run(None, {source.name: x})[0]), {"input": source.name, "shape": source.shape}


def litert_runner(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    (source,) = interpreter.get_input_details()

    def run(x):
        interpreter.resize_tensor_input(source["index"], x.shape, strict=True)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    about = {"shape": [int(n) for n in source["shape_signature"]], "dtype": np.dtype(source["dtype"]).name}
    return run, about


def savedmodel_runner(path):
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    (output,) = serve.structured_outputs
    about = {"input": name, "shape": spec.shape.as_list(), "output": output}
    return (lambda x: serve(**{name: tf.constant(x)})[output].numpy()), about


def pt2_runner(path):
    import torch

    module = torch.export.load(path).module()

    def run(x):
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    # A size below the program's range is refused by the program's own guard; say how.
    try:
        run(np.zeros((1, 3, 8, 8), np.float32))
        refusal = None
    except Exception as err:  # torch raises an AssertionError or a RuntimeError, by version
        refusal = str(err).splitlines()[0]
    return run, {"refusal_below_range": refusal}


RUNNERS = {"onnxruntime": onnxruntime_runner, "litert": litert_runner, "savedmodel": savedmodel_runner,
           "pt2": pt2_runner}

for job in json.loads(open(sys.argv[2]).read()):
    run, about = RUNNERS[RUNTIME](job["file"])
    outputs = {f"output_{i}": run(np.load(x)) for i, x in enumerate(job["inputs"])}
    np.savez(job["outputs"], about=json.dumps(about), **outputs)

loaded = sorted({m.split(".")[0] for m, module in sys.modules.items() if module is not None} & set(FORBIDDEN))
print(json.dumps(loaded))
