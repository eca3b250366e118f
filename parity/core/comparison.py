"""Layer-by-layer comparison of a resnet_torch model and a resnet_tf model on the same inputs.

The two models are observed at the plan's taps (see taps), in forward order: the stem, every
block, every stage and the final output. Each tap gets a row (report.TapResult) by
metrics.difference; the contract (DESIGN.md) holds when every relative error is within its
bound, and `first_divergence` names the first tap in forward order that breaks it.
"""

from __future__ import annotations

import numpy as np

from .frameworks import environment, keras, torch  # torch before TensorFlow: see frameworks
from .metrics import topk_agreement
from .report import EVAL_TOLERANCE, ParityReport, tap_result
from .taps import keras_taps, nhwc, torch_taps


def run_torch(torch_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tap's output of the torch model in eval mode, in forward order (NHWC for maps)."""
    torch_model.eval()
    with torch.no_grad():
        outputs = torch_taps(torch_model, torch.from_numpy(x))
    return {k: nhwc(v.numpy()) for k, v in outputs.items()}


def run_keras(keras_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tap's output of the Keras model in inference mode, in forward order (NHWC for maps)."""
    outputs = keras_taps(keras_model, nhwc(x))
    return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}


def as_images(inputs, channels: int) -> np.ndarray:
    """`inputs` (numpy or torch) as float32 NCHW images with `channels` channels, or a ValueError."""
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    x = x.astype(np.float32)
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"inputs must be NCHW images shaped (N, {channels}, H, W), got shape {x.shape}")
    return x


def compare(torch_model, keras_model, inputs, mode: str = "eval", seed: int = 0,
            train_dtype: str = "float64") -> ParityReport:
    """Compare the two models on `inputs` (NCHW, numpy or torch) tap by tap.

    mode="eval": inference with running statistics. mode="train": one training step on copies
    of both models (batch statistics, gradients of one scalar loss, an SGD step, then every
    parameter and running statistic, computed in `train_dtype`; see training). The given
    models are unchanged.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    spec = torch_model.spec
    x = as_images(inputs, spec.in_channels)
    if mode == "train":
        from .training import train_step_report

        report = train_step_report(torch_model, keras_model, x, seed, dtype=train_dtype)
        report.environment = environment()
        return report
    ref = run_torch(torch_model, x)
    ours = run_keras(keras_model, x)
    report = ParityReport(spec.name, mode, tuple(x.shape), environment=environment())
    for name, kind in torch_model.plan.taps().items():
        report.rows.append(tap_result(name, kind, ref[name], ours[name], EVAL_TOLERANCE))
    out = ref.get("output")
    if out is not None and out.ndim == 2 and out.shape[1] > 1 and spec.include_top:
        report.k = min(5, out.shape[1])
        report.top1_agreement, report.topk_agreement = topk_agreement(out, ours["output"], report.k)
    return report
