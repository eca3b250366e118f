"""Model construction time of the largest networks, Keras against PyTorch (same spec).

    python -m benchmarks.build [--quick]

Prints one JSON list: for each network, seconds to build it in each framework (median of 3).
"""

from __future__ import annotations

import argparse
import json
import sys

from .timing import interleaved

LARGEST = ["resnet152", "resnest269", "resnet1202"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import resnet_torch  # first: it loads torch and triton, which must precede TensorFlow

    import keras

    import resnet_tf

    def keras_build(name):
        resnet_tf.create_model(name)
        keras.backend.clear_session()  # keep memory flat across repeats

    rows = []
    for name in (["resnet152"] if args.quick else LARGEST):
        seconds = interleaved(
            {"resnet_tf": lambda: keras_build(name), "resnet_torch": lambda: resnet_torch.create_model(name)},
            repeats=1 if args.quick else 3, warmup=0 if args.quick else 1,
        )
        rows.append({"model": name, **{f"{k}_s": v for k, v in seconds.items()}})
        print(f"build {name} done", file=sys.stderr, flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
