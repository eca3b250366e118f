"""Timing helpers: every comparison interleaved (A B A B ...) after warm-up, medians, ratios."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each candidate, calls alternating between candidates so that
    a slow moment of the machine hits all of them alike."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(repeats):
        # Rotate the order each round: no candidate always runs first, or right after another.
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def parse_inference_arguments(parser, argv, models: list[str], batches: list[int], quick_model: str):
    """Add the options every inference group takes and parse `argv`; with --quick, the workload
    becomes a smoke run of `quick_model` at batch 1, 2 repeats."""
    parser.add_argument("--quick", action="store_true", help=f"{quick_model} only, batch 1, 2 repeats (smoke test)")
    parser.add_argument("--models", nargs="+", default=models)
    parser.add_argument("--batches", nargs="+", type=int, default=batches)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.batches, args.repeats = [quick_model], [1], 2
    return args


def machine() -> dict:
    import os
    import platform

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
            for line in f:
                if line.startswith("flags"):  # TensorFlow turns oneDNN on by itself only with AVX-512
                    info["avx512"] = "avx512f" in line.split()
                    break
    except OSError:
        pass
    from importlib import metadata

    for package in ("torch", "tensorflow", "keras", "jax", "onnxruntime"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return info
