"""Cost of `resnet-parity convert` for the largest checkpoints against the floor of reading the
source file and writing its tensors alone (no model, no porting, no verification).

    python -m benchmarks.conversion [--quick]

Each measurement is a separate process, timed from outside, with its peak resident memory from
the kernel (wait4's ru_maxrss). Checkpoints are made with randomised weights in a temporary
directory (never downloaded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LARGEST = ["wide_resnet101_2", "resnest269"]

FLOOR = """
import sys, h5py, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
with h5py.File(sys.argv[2], "w") as f:
    for key, value in state.items():
        f[key] = value.numpy()
"""


def _run(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import torch

    import resnet_torch
    from parity.testing import randomize_torch

    rows = []
    script = str(Path(sys.executable).parent / "resnet-parity")
    with tempfile.TemporaryDirectory() as tmp:
        for name in (["resnet50"] if args.quick else LARGEST):
            src = Path(tmp) / f"{name}.pth"
            torch.save(randomize_torch(resnet_torch.create_model(name), seed=0).state_dict(), src)
            mib = src.stat().st_size / 2**20
            floor = _run([sys.executable, "-c", FLOOR, str(src), str(Path(tmp) / "floor.h5")])
            convert = _run([script, "convert", str(src), str(Path(tmp) / f"{name}.keras"), "--no-verify"])
            verified = _run([script, "convert", str(src), str(Path(tmp) / f"{name}-v.keras")])
            rows.append({
                "model": name, "checkpoint_mib": mib,
                "floor_s": floor[0], "floor_peak_mib": floor[1],
                "convert_s": convert[0], "convert_peak_mib": convert[1],
                "convert_verified_s": verified[0], "convert_verified_peak_mib": verified[1],
                "time_over_floor": convert[0] / floor[0], "peak_over_checkpoint": convert[1] / mib,
                "peak_over_floor": convert[1] / floor[1],
            })
            print(f"conversion {name} done", file=sys.stderr, flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
