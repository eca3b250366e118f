"""ONNX Runtime on our exported models against resnet_torch eager, interleaved.

    python -m benchmarks.onnx_runtime [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .inference import BATCHES, MODELS, SIZE, result_rows
from .timing import interleaved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    models, batches, repeats = (["resnet18"], [1], 2) if args.quick else (MODELS, BATCHES, 5)

    import numpy as np
    import onnxruntime as ort
    import torch

    import parity
    from parity.files.loading import load_models

    torch.set_grad_enabled(False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            path = Path(tmp) / f"{name}.onnx"
            parity.export_onnx(name, path, framework="torch", size=(SIZE, SIZE))
            torch_model = load_models(name, ("torch",))["torch"]  # the same seeded weights
            options = ort.SessionOptions()
            # ONNX Runtime's idle threads spin by default, stealing the cores from the
            # interleaved torch runs; without spinning both get the machine in turn.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for batch in batches:
                x = np.random.default_rng(0).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)
                xt = torch.from_numpy(x)
                candidates = {
                    "onnxruntime (exported from torch)": lambda: session.run(None, {"input": x}),
                    "resnet_torch": lambda: torch_model(xt),
                }
                rows += result_rows(name, batch, interleaved(candidates, repeats), "resnet_torch")
                print(f"onnxruntime {name} batch {batch} done", file=sys.stderr, flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
