"""`make bench`: every benchmark in its own process, one JSON file, one chart, one table.

    python -m benchmarks.run [--quick] [--only GROUP ...] [--out benchmarks/results]

Each group runs in a fresh interpreter so that the frameworks' thread pools do not compete;
within a group the candidates are interleaved (see timing.py). Ratios > 1 mean ours is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .timing import machine

ROOT = Path(__file__).resolve().parents[1]


# TensorFlow turns oneDNN on by itself only on CPUs with AVX-512; elsewhere (this AVX2 machine)
# the Keras benchmarks run twice, as installed and with oneDNN asked for.
ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "1"}

# The BatchNorm-folded variants and the unfolded ones they speed up.
FOLDED = {
    "resnet_torch folded": "resnet_torch",
    "resnet_torch folded channels_last": "resnet_torch channels_last",
    "resnet_tf folded tf.function": "resnet_tf tf.function",
    "resnet_tf folded XLA": "resnet_tf XLA",
}


def _run(module: str, *args: str, env: dict | None = None):
    """The JSON a benchmark module prints last, run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(f"benchmarks.{module} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _group(module: str, *args: str, env: dict | None = None) -> list[dict]:
    group = " ".join((module, *args, *(f"{k}={v}" for k, v in (env or {}).items())))
    return [{**row, "group": group} for row in _run(module, *args, env=env)]


def parity_suite_seconds(quick: bool) -> dict:
    """Wall time of `resnet-parity check` (every variant unless quick), the suite users run in CI."""
    names = ["resnet18", "resnet20"] if quick else ["--all"]
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "parity.cli", "check", *names], cwd=ROOT, capture_output=True, text=True)
    return {"what": "resnet-parity check " + " ".join(names), "seconds": time.perf_counter() - start,
            "passed": out.returncode == 0}


def _tagged(row: dict, tag: str) -> dict:
    return {**row, "variant": row["variant"] + tag, "reference": row["reference"] + tag}


def fold_speedups(rows: list[dict]) -> list[dict]:
    """Throughput of each folded variant over its unfolded twin, measured in the same group."""
    by_key = {(r["group"], r["model"], r["batch"], r["variant"]): r["images_per_s"] for r in rows}
    out = []
    for (group, model, batch, variant), speed in by_key.items():
        tag = variant[variant.index(" ["):] if " [" in variant else ""
        base = FOLDED.get(variant.removesuffix(tag))
        if base and (group, model, batch, base + tag) in by_key:
            out.append({"model": model, "batch": batch, "variant": variant, "unfolded": base + tag,
                        "speedup": speed / by_key[(group, model, batch, base + tag)]})
    return out


def table(results: dict) -> str:
    lines = [f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; {results['date']}", ""]
    if results["inference"]:  # not where only other groups ran
        lines.append(f"{'model':<16} {'batch':>5}  {'variant':<44} {'img/s':>8} {'ratio':>7}  reference")
    for row in results["inference"]:
        ratio = row.get("ratio_per_mac", row["ratio"])
        per = " per MAC" if "ratio_per_mac" in row else ""
        lines.append(f"{row['model']:<16} {row['batch']:>5}  {row['variant']:<44} {row['images_per_s']:>8.2f} "
                     f"{ratio:>7.3f}  {row['reference']}{per}")
    if results.get("folding"):  # only where the inference group ran
        lines.append("")
        lines.append(f"{'model':<16} {'batch':>5}  {'folded variant':<44} {'speed-up over unfolded':>22}")
    for f in results.get("folding", []):
        lines.append(f"{f['model']:<16} {f['batch']:>5}  {f['variant']:<44} {f['speedup']:>22.3f}")
    if results.get("deploy"):
        lines += ([""] if results["inference"] else []) + deploy_table(results["deploy"])
    lines.append("")
    for c in results.get("conversion", []):
        lines.append(
            f"convert {c['model']} ({c['checkpoint_mib']:.0f} MiB, --no-verify): {c['convert_s']:.1f} s, "
            f"{c['time_over_floor']:.2f}x the floor ({c['floor_s']:.1f} s); peak {c['convert_peak_mib']:.0f} MiB "
            f"= {c['peak_over_checkpoint']:.1f}x the checkpoint, {c['peak_over_floor']:.2f}x the floor's; "
            f"verified (the default) {c['convert_verified_s']:.1f} s, peak {c['convert_verified_peak_mib']:.0f} MiB"
        )
    for item in results.get("timings", []):
        lines.append(f"{item['what']}: {item['seconds']:.1f} s" + ("" if item.get("passed", True) else " (FAILED)"))
    return "\n".join(lines)


def deploy_table(deploy: dict) -> list[str]:
    """The deployment runtimes: images/s, GFLOP/s and the fraction of the roofline measured in
    the same run, and the ratio to eager resnet_torch."""
    peak = deploy["roofline"]
    rates = ", ".join(f"{r['library']} {r['gflops']:.0f}" for r in peak)
    lines = [f"roofline: {peak[0]['gflops']:.0f} GFLOP/s ({peak[0]['library']}, float32 GEMM {peak[0]['side']}^2; "
             f"{rates})",
             f"{'model':<16} {'batch':>5}  {'runtime':<24} {'img/s':>8} {'GFLOP/s':>8} {'of roofline':>11} "
             f"{'vs eager torch':>14}"]
    for row in deploy["rows"]:
        lines.append(f"{row['model']:<16} {row['batch']:>5}  {row['variant']:<24} {row['images_per_s']:>8.2f} "
                     f"{row['gflops']:>8.1f} {row['roofline_fraction']:>11.2f} {row['ratio']:>14.3f}")
    return lines


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["inference"] if r["variant"] != r["reference"]]
    labels = [f"{r['model']} b{r['batch']}\n{r['variant']}" for r in rows]
    ratios = [r.get("ratio_per_mac", r["ratio"]) for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.5))
    ax.barh(range(len(rows)), ratios, color=["tab:green" if x >= 1 else "tab:red" for x in ratios])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed relative to the reference implementation (per MAC for Keras)")
    ax.set_title(f"resnet-parity inference, {results['machine']['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _inference(results: dict, quick: list[str]) -> None:
    results["inference"] += _group("inference", "torch", *quick)
    results["inference"] += _group("inference", "keras", *quick)
    results["inference"] += [_tagged(row, " [oneDNN]") for row in _group("inference", "keras", *quick, env=ONEDNN)]
    results["inference"] += _group("onnx_runtime", *quick)


def _backends(results: dict, quick: list[str]) -> None:
    for backend in ("tensorflow", "jax", "torch"):
        results["inference"] += _group("backends", *quick, env={"KERAS_BACKEND": backend})


def _deploy(results: dict, quick: list[str]) -> None:
    results["deploy"] = _run("deploy", *quick)


def _conversion(results: dict, quick: list[str]) -> None:
    results["conversion"] = _group("conversion", *quick)


def _build(results: dict, quick: list[str]) -> None:
    for row in _group("build", *quick):
        results["timings"] += [
            {"what": f"build {row['model']} in {fw}", "seconds": row[f"{fw}_s"]} for fw in ("resnet_tf", "resnet_torch")
        ]


def _parity_suite(results: dict, quick: list[str]) -> None:
    results["timings"].append(parity_suite_seconds(bool(quick)))


# Each group in its own processes; `--only` picks some.
GROUPS = {"inference": _inference, "backends": _backends, "deploy": _deploy, "conversion": _conversion,
          "build": _build, "parity-suite": _parity_suite}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one model, batch 1")
    parser.add_argument("--only", nargs="+", choices=list(GROUPS), help="these groups alone, written to <groups>.json")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []

    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "quick": args.quick, "inference": [],
               "timings": []}
    for group in args.only or GROUPS:
        print(f"{group} ...", flush=True)
        GROUPS[group](results, quick)
    results["folding"] = fold_speedups(results["inference"])

    args.out.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "-".join(args.only) if args.only else "latest"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1))
    chart(results, args.out / f"{name}.png")
    (args.out / f"{name}.txt").write_text(table(results) + "\n")
    print(table(results))
    print(f"\nwrote {args.out / name}.json, .png and .txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
