"""resnet_tf on the Keras backend of this process, compiled where the backend can, against
keras.applications.ResNet50 on the same backend (per multiply-accumulate) and resnet_torch.

    KERAS_BACKEND=jax python -m benchmarks.backends [--quick]

Compiled means: TensorFlow, a tf.function with XLA; JAX, jax.jit over stateless_call;
PyTorch runs eager (see `forward`).
Prints one JSON list of rows, as benchmarks.inference does.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .inference import BATCHES, KERAS_APPLICATIONS_RESNET50_GMACS, SIZE, result_rows
from .timing import interleaved, parse_inference_arguments

MODELS = ["resnet50", "resnext50_32x4d"]
REFERENCE = "keras.applications ResNet50"


def forward(model, backend: str):
    """(mode, x -> the model's eval-mode output as numpy), compiled where the backend can."""
    import keras

    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False), jit_compile=True)
        return "XLA", lambda x: fn(x).numpy()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]
        fn = jax.jit(lambda t, f, x: model.stateless_call(t, f, x, training=False)[0])
        return "jax.jit", lambda x: np.asarray(fn(trainable, frozen, x))
    # PyTorch: eager. torch.compile of a Keras model (what jit_compile=True asks for) recompiles
    # the layers' calls until dynamo's recompile limit sends them back to eager, and measured
    # slower than eager here (resnet50, batch 1: 1.71 against 1.86 images/s).
    import torch

    def run(x):
        with torch.no_grad():
            return keras.ops.convert_to_numpy(model(x, training=False))

    return "eager", run


def bench(models, batches, repeats):
    import torch

    import resnet_torch  # torch and triton before TensorFlow (see resnet_torch)

    import keras

    import resnet_spec as rs
    import resnet_tf
    from parity.testing import randomize_torch

    backend = keras.backend.backend()
    torch.set_grad_enabled(False)
    tag = f" [{backend}]"
    reference = keras.applications.ResNet50(weights=None, input_shape=(SIZE, SIZE, 3))
    mode, ref_fn = forward(reference, backend)
    ref_name, ours_name = f"{REFERENCE} {mode}{tag}", f"resnet_tf {mode}{tag}"
    rows = []
    for name in models:
        ours = resnet_tf.create_model(name, input_shape=(SIZE, SIZE, 3))
        torch_model = randomize_torch(resnet_torch.create_model(name), seed=0).eval()
        gmacs = rs.count_macs(rs.get(name), SIZE) / 1e9
        _, ours_fn = forward(ours, backend)
        for batch in batches:
            x = np.random.default_rng(0).standard_normal((batch, SIZE, SIZE, 3)).astype(np.float32)
            x_torch = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            seconds = interleaved({ours_name: lambda: ours_fn(x), ref_name: lambda: ref_fn(x),
                                   "resnet_torch": lambda: torch_model(x_torch)}, repeats)
            macs = {ours_name: gmacs, ref_name: KERAS_APPLICATIONS_RESNET50_GMACS}
            rows += result_rows(name, batch, {k: seconds[k] for k in macs}, ref_name, macs)
            # The same network in resnet_torch (eager), in the same run.
            rows += result_rows(name, batch, {k: seconds[k] for k in (ours_name, "resnet_torch")}, "resnet_torch")
            print(f"{backend} {name} batch {batch} done", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    args = parse_inference_arguments(parser, argv, MODELS, BATCHES, "resnet50")
    print(json.dumps(bench(args.models, args.batches, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
