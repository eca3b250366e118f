"""Layer-by-layer comparison of a resnet_torch model and a resnet_tf model on the same inputs.

The two models are tapped at the same points, in forward order: the stem, every block, every
stage and the final output. Each tap gets max |diff|, max |diff| / max(1, max |torch|) and mean
|diff|; the contract (DESIGN.md) holds when every relative error is within the tolerance, and
`first_divergence` names the first tap in forward order that breaks it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
from ._frameworks import keras, torch  # torch before TensorFlow: see _frameworks

from . import taps as _taps  # noqa: E402

EVAL_TOLERANCE = 1e-5  # relative, for every tap, eval and train-mode forward
GRAD_TOLERANCE = 1e-4  # relative, per parameter gradient


@dataclass(frozen=True)
class TapResult:
    name: str
    kind: str  # "stem", "block", "stage", "output", "gradient", "parameter", "buffer"
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    mean_abs: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(self.max_rel <= self.tolerance)  # NaN compares False: not ok


@dataclass
class ParityReport:
    model: str
    mode: str
    input_shape: tuple[int, ...]  # NCHW, as given to PyTorch
    rows: list[TapResult] = field(default_factory=list)
    top1_agreement: float | None = None
    topk_agreement: float | None = None
    k: int | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows) and self.top1_agreement in (None, 1.0)

    @property
    def first_divergence(self) -> str | None:
        """The first tap, in forward order, that breaks its bound (None when all hold)."""
        return next((r.name for r in self.rows if not r.ok), None)

    def worst(self, kind: str | None = None) -> TapResult | None:
        rows = [r for r in self.rows if kind is None or r.kind == kind]
        return max(rows, key=lambda r: r.max_rel, default=None)

    def table(self, every_block: bool = False) -> str:
        """A readable table; blocks are listed only when they fail unless every_block=True."""
        head = f"{'tap':<28} {'kind':<9} {'shape':<20} {'max_abs':>10} {'max_rel':>10} {'mean_abs':>10}  ok"
        lines = [f"{self.model} ({self.mode} mode), input {tuple(self.input_shape)}", head, "-" * len(head)]
        for r in self.rows:
            if r.kind in ("block", "gradient", "parameter", "buffer") and r.ok and not every_block:
                continue
            lines.append(
                f"{r.name:<28} {r.kind:<9} {str(r.shape):<20} {r.max_abs:>10.2e} {r.max_rel:>10.2e} "
                f"{r.mean_abs:>10.2e}  {'yes' if r.ok else 'NO'}"
            )
        for kind in ("block", "gradient", "parameter", "buffer"):
            w = self.worst(kind)
            if w is not None and not every_block:
                rows = [r for r in self.rows if r.kind == kind]
                lines.append(f"{len(rows)} {kind}s, worst {w.name}: max_rel {w.max_rel:.2e} (bound {w.tolerance:.0e})")
        if self.top1_agreement is not None:
            lines.append(f"top-1 agreement {self.top1_agreement:.0%}, top-{self.k} agreement {self.topk_agreement:.0%}")
        verdict = "PASS" if self.ok else f"FAIL: first divergence at {self.first_divergence}"
        lines.append(verdict)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "mode": self.mode,
            "input_shape": list(self.input_shape),
            "ok": self.ok,
            "first_divergence": self.first_divergence,
            "top1_agreement": self.top1_agreement,
            "topk_agreement": self.topk_agreement,
            "k": self.k,
            "rows": [dict(asdict(r), ok=r.ok, shape=list(r.shape)) for r in self.rows],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def diff_stats(name, kind, reference: np.ndarray, other: np.ndarray, tolerance: float) -> TapResult:
    """Differences of `other` from `reference` (same layout), relative to max(1, max|reference|)."""
    if reference.shape != other.shape:
        return TapResult(name, kind, tuple(reference.shape), float("inf"), float("inf"), float("inf"), tolerance)
    d = np.abs(reference.astype(np.float64) - other.astype(np.float64))
    max_abs = float(d.max()) if d.size else 0.0
    scale = max(1.0, float(np.abs(reference).max()) if d.size else 1.0)
    return TapResult(name, kind, tuple(reference.shape), max_abs, max_abs / scale, float(d.mean()) if d.size else 0.0, tolerance)


def _nhwc(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


def _topk_agreement(ref: np.ndarray, other: np.ndarray, k: int) -> tuple[float, float]:
    top1 = float(np.mean(ref.argmax(1) == other.argmax(1)))
    a = np.sort(np.argsort(-ref, axis=1)[:, :k], axis=1)
    b = np.sort(np.argsort(-other, axis=1)[:, :k], axis=1)
    return top1, float(np.mean(np.all(a == b, axis=1)))


def run_torch(torch_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tap's output of the torch model in eval mode, in forward order (NHWC for maps)."""
    torch_model.eval()
    outputs = _taps.torch_taps(torch_model, torch.from_numpy(x))
    return {k: _nhwc(v.detach().numpy()) for k, v in outputs.items()}


def run_keras(keras_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tap's output of the Keras model in inference mode, in forward order (NHWC for maps)."""
    outputs = _taps.keras_taps(keras_model, _nhwc(x))
    return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}


def compare(torch_model, keras_model, inputs, mode: str = "eval", seed: int = 0,
            train_dtype: str = "float64") -> ParityReport:
    """Compare the two models on `inputs` (NCHW, numpy or torch) tap by tap.

    mode="eval": inference with running statistics. mode="train": one training step on copies
    of both models (batch statistics, gradients of one scalar loss, an SGD step, then every
    parameter and running statistic, computed in `train_dtype`; see parity.training). The
    given models are unchanged.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    x = x.astype(np.float32)
    channels = torch_model.spec.in_channels
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"inputs must be NCHW images shaped (N, {channels}, H, W), got shape {x.shape}")
    if mode == "train":
        from .training import train_step_report

        return train_step_report(torch_model, keras_model, x, seed, dtype=train_dtype)
    with torch.no_grad():
        ref = run_torch(torch_model, x)
    ours = run_keras(keras_model, x)
    report = ParityReport(torch_model.spec.name, mode, tuple(x.shape))
    for name, kind in _taps.tap_kinds(torch_model.spec).items():
        report.rows.append(diff_stats(name, kind, ref[name], ours[name], EVAL_TOLERANCE))
    out = ref.get("output")
    if out is not None and out.ndim == 2 and out.shape[1] > 1 and torch_model.spec.include_top:
        report.k = min(5, out.shape[1])
        report.top1_agreement, report.topk_agreement = _topk_agreement(out, ours["output"], report.k)
    return report
