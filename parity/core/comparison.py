"""Layer-by-layer comparison of a resnet_torch model and a resnet_tf model on the same inputs.

The two models are observed at the plan's taps (see taps), in forward order: the stem, every
block, every stage and the final output. Each tap gets a row (report.TapResult) by
metrics.difference; the contract (DESIGN.md) holds when every relative error is within its
bound, and `first_divergence` names the first tap in forward order that breaks it.
"""

from __future__ import annotations

import copy

import numpy as np

from . import precision as precisions
from .frameworks import environment, torch  # torch before TensorFlow: see frameworks
from .metrics import topk_agreement
from .report import EVAL_TOLERANCE, ParityReport, tap_result
from .taps import keras_taps, nhwc, torch_taps


def run_torch(torch_model, x: np.ndarray, precision: str = "float32", native: bool = False
              ) -> dict[str, np.ndarray]:
    """Every tap's output of the torch model in eval mode at `precision` (autocast for the mixed
    ones), in forward order (NHWC for maps; half-precision outputs widened to float32). With
    `native`, on PyTorch's own CPU kernels instead of oneDNN's (precision.torch_native_kernels)."""
    torch_model.eval()
    with torch.no_grad(), precisions.torch_autocast(precision), precisions.torch_native_kernels(native):
        outputs = torch_taps(torch_model, torch.from_numpy(x))
    return {k: nhwc(precisions.torch_numpy(v)) for k, v in outputs.items()}


def float64_reference(torch_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tap of a float64 copy of the torch model (the same weights, exactly) on `x`."""
    return run_torch(copy.deepcopy(torch_model).double(), x.astype(np.float64), "float64")


def run_keras(keras_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tap's output of the Keras model in inference mode, in forward order (NHWC for maps;
    half-precision outputs widened to float32)."""
    outputs = keras_taps(keras_model, nhwc(x))
    return {k: precisions.keras_numpy(v) for k, v in outputs.items()}


def as_images(inputs, channels: int) -> np.ndarray:
    """`inputs` (numpy or torch) as float32 NCHW images with `channels` channels, or a ValueError."""
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    x = x.astype(np.float32)
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"inputs must be NCHW images shaped (N, {channels}, H, W), got shape {x.shape}")
    return x


def compare(torch_model, keras_model, inputs, mode: str = "eval", seed: int = 0, precision: str | None = None,
            reference: bool = True, allow_tf32: bool = False) -> ParityReport:
    """Compare the two models on `inputs` (NCHW, numpy or torch) tap by tap, at `precision`
    (float32, float64, or mixed: bfloat16, float16; see precision). By default float32 in eval
    mode, training.TRAIN_PRECISION (float32) in train mode.

    With `reference` (the default below float64), a float64 copy of the torch model runs too,
    and each tap is held to the envelope: Keras' deviation from float64 within
    ENVELOPE_MULTIPLE times PyTorch's own (see report.TapResult). Without it, each tap is
    held to the fixed bounds. TF32 stays off unless `allow_tf32`.

    mode="eval": inference with running statistics. mode="train": one training step on copies
    of both models (batch statistics, gradients of one scalar loss, an SGD step, then every
    parameter and running statistic; see training). The given models are unchanged; a Keras
    model built under another precision's policy is copied, the copy built under it.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    if precision is None:
        from .training import TRAIN_PRECISION

        precision = TRAIN_PRECISION if mode == "train" else "float32"
    precisions.check_precision(precision)
    reference = reference and precision != "float64"
    if precision in precisions.MIXED and not reference:
        raise ValueError(f"{precision} is compared by its envelope around float64: it needs reference=True")
    if precision in precisions.MIXED and mode == "train":
        raise ValueError(precisions.TRAIN_MIXED)
    spec = torch_model.spec
    x = as_images(inputs, spec.in_channels)
    precisions.probe(precision)
    with precisions.tf32(allow_tf32):
        if mode == "train":
            from .training import train_step_report

            report = train_step_report(torch_model, keras_model, x, seed, precision, reference)
        else:
            report = eval_report(torch_model, keras_model, x, precision, reference)
        report.environment = {**environment(), "devices": precisions.devices(torch_model),
                              "tf32": {"allowed": allow_tf32, **precisions.tf32_state()}}
    return report


def eval_report(torch_model, keras_model, x: np.ndarray, precision: str, reference: bool) -> ParityReport:
    spec = torch_model.spec
    dtype = precisions.model_dtype(precision)
    float64 = float64_reference(torch_model, x) if reference else {}
    t_model = copy.deepcopy(torch_model).double() if precision == "float64" else torch_model
    ref = run_torch(t_model, x.astype(dtype), precision)
    # PyTorch's own deviation from float64 is one sample of its rounding; its native kernels
    # sum in other orders, a second sample (see report.TapResult.torch_dev).
    variant = run_torch(t_model, x.astype(dtype), precision, native=True) if reference else {}
    with precisions.keras_context(precision):
        ours = run_keras(precisions.keras_at(keras_model, precision), x.astype(dtype))
    report = ParityReport(spec.name, "eval", tuple(x.shape), precision=precision,
                          reference="float64" if reference else None)
    for name, kind in torch_model.plan.taps().items():
        report.rows.append(tap_result(name, kind, ref[name], ours[name], EVAL_TOLERANCE, float64.get(name),
                                      torch_variant=variant.get(name)))
    out = ref.get("output")
    if out is not None and out.ndim == 2 and out.shape[1] > 1 and spec.include_top:
        report.k = min(5, out.shape[1])
        report.top1_agreement, report.topk_agreement = topk_agreement(out, ours["output"], report.k)
    return report
