"""Inference throughput: ours against the reference implementation, in one process each.

    python -m benchmarks.inference torch  [--quick]   # resnet_torch vs torchvision
    python -m benchmarks.inference keras  [--quick]   # resnet_tf vs keras.applications.ResNet50

Prints one JSON list of rows: model, batch, variant, images/s, and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .timing import interleaved, parse_inference_arguments

MODELS = ["resnet18", "resnet50", "resnext50_32x4d", "resnest50"]
BATCHES = [1, 16]
SIZE = 224
KERAS_APPLICATIONS_RESNET50_GMACS = 3.86  # ResNet v1 (stride on the 1x1 conv), 224x224


def result_rows(model, batch, seconds: dict[str, float], reference, macs: dict[str, float] | None = None):
    """One row per candidate with its throughput and its ratio to `reference` (a name, or a
    function of the candidate's name: the reference run in the same mode)."""
    rows = []
    for variant, s in seconds.items():
        ref = reference(variant) if callable(reference) else reference
        row = {"model": model, "batch": batch, "variant": variant, "images_per_s": batch / s,
               "reference": ref, "ratio": seconds[ref] / s}
        if macs:  # compare work done per second where the networks differ
            row["gmacs_per_s"] = batch * macs[variant] / s
            row["ratio_per_mac"] = row["gmacs_per_s"] / (batch * macs[ref] / seconds[ref])
        rows.append(row)
    return rows


def bench_torch(models, batches, repeats):
    import torch
    import torchvision

    import resnet_torch
    from parity.testing import randomize_torch

    torch.set_grad_enabled(False)
    rows = []
    for name in models:
        ours = randomize_torch(resnet_torch.create_model(name), seed=0).eval()
        folded = resnet_torch.fold_batchnorm(ours)
        reference = getattr(torchvision.models, name)().eval() if hasattr(torchvision.models, name) else None
        if reference is not None:
            reference.load_state_dict(ours.state_dict())
        ours_cl = resnet_torch.create_model(name).eval().to(memory_format=torch.channels_last)
        ours_cl.load_state_dict(ours.state_dict())
        folded_cl = resnet_torch.fold_batchnorm(ours_cl).to(memory_format=torch.channels_last)
        for batch in batches:
            x = torch.randn(batch, 3, SIZE, SIZE)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            candidates = {
                "resnet_torch": lambda: ours(x),
                "resnet_torch channels_last": lambda: ours_cl(x_cl),
                "resnet_torch folded": lambda: folded(x),
                "resnet_torch folded channels_last": lambda: folded_cl(x_cl),
            }
            if reference is not None:
                candidates["torchvision"] = lambda: reference(x)
            ref = "torchvision" if reference is not None else "resnet_torch"
            rows += result_rows(name, batch, interleaved(candidates, repeats), ref)
            print(f"torch {name} batch {batch} done", file=sys.stderr, flush=True)
    return rows


def bench_keras(models, batches, repeats):
    import resnet_torch  # noqa: F401  (torch and triton before TensorFlow)

    import keras
    import tensorflow as tf

    import resnet_spec as rs
    import resnet_tf

    rows = []
    reference = keras.applications.ResNet50(weights=None, input_shape=(SIZE, SIZE, 3))
    ref_fns = {
        "keras.applications ResNet50": tf.function(lambda x: reference(x, training=False), jit_compile=False),
        "keras.applications ResNet50 XLA": tf.function(lambda x: reference(x, training=False), jit_compile=True),
    }
    for name in models:
        ours = resnet_tf.create_model(name, input_shape=(SIZE, SIZE, 3))
        folded = resnet_tf.fold_batchnorm(ours)
        gmacs = rs.count_macs(rs.get(name), SIZE) / 1e9
        fns = {
            "resnet_tf tf.function": tf.function(lambda x: ours(x, training=False), jit_compile=False),
            "resnet_tf folded tf.function": tf.function(lambda x: folded(x, training=False), jit_compile=False),
            "resnet_tf XLA": tf.function(lambda x: ours(x, training=False), jit_compile=True),
            "resnet_tf folded XLA": tf.function(lambda x: folded(x, training=False), jit_compile=True),
        }
        for batch in batches:
            x = tf.constant(np.random.default_rng(0).standard_normal((batch, SIZE, SIZE, 3)).astype(np.float32))
            candidates = {k: (lambda f=f: f(x).numpy()) for k, f in {**fns, **ref_fns}.items()}
            macs = {k: gmacs for k in fns} | {k: KERAS_APPLICATIONS_RESNET50_GMACS for k in ref_fns}
            same_mode = lambda v: "keras.applications ResNet50" + (" XLA" if "XLA" in v else "")  # noqa: E731
            rows += result_rows(name, batch, interleaved(candidates, repeats), same_mode, macs)
            print(f"keras {name} batch {batch} done", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("framework", choices=("torch", "keras"))
    args = parse_inference_arguments(parser, argv, MODELS, BATCHES, "resnet18")
    fn = bench_torch if args.framework == "torch" else bench_keras
    print(json.dumps(fn(args.models, args.batches, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
