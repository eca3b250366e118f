"""What a comparison found, tap by tap: rows with their bounds, the verdict, a table and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .metrics import Difference, difference

EVAL_TOLERANCE = 1e-5  # relative, for every tap, eval and train-mode forward
GRAD_TOLERANCE = 1e-4  # relative, per parameter gradient
# Keras' deviation from the float64 reference may be this multiple of PyTorch's own. Measured on
# correct ports (docs/architecture.md, Envelope), the ratio keras/torch over every tap of one
# network per family is at most 1.9 in float32, 1.5 in bfloat16 and 1.8 in float16, and 3.0 in
# a badly conditioned resnest269; the broken ports of tests/core/test_envelope.py give 62 and
# more at their block.
ENVELOPE_MULTIPLE = 4.0


@dataclass(frozen=True)
class TapResult:
    name: str
    kind: str  # "stem", "block", "stage", "output", "gradient", "parameter", "buffer"
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    mean_abs: float
    tolerance: float
    # With a float64 reference: PyTorch's and Keras' relative deviations from it (same measure).
    # PyTorch's is the larger of its runs with oneDNN's kernels and with its own (other
    # summation orders): in a badly conditioned network one run's deviation is a lucky draw
    # (resnest269, layer3.42: 1.3e-4 with oneDNN, 3.7e-4 without), and Keras is held to the
    # float32 noise, not to the luckiest draw.
    torch_dev: float | None = None
    keras_dev: float | None = None
    multiple: float = ENVELOPE_MULTIPLE

    @classmethod
    def of(cls, name: str, kind: str, shape, diff: Difference, tolerance: float, **deviations) -> "TapResult":
        return cls(name, kind, tuple(shape), diff.max_abs, diff.max_rel, diff.mean_abs, tolerance, **deviations)

    @property
    def bound(self) -> float:
        """What keras_dev is held to: `multiple` times torch_dev, or `tolerance` where PyTorch
        itself is that close to float64 (then max_rel must be within tolerance too)."""
        if self.torch_dev is None:
            return self.tolerance
        envelope = self.multiple * self.torch_dev
        return max(envelope, self.tolerance) if self.torch_dev <= self.tolerance else envelope

    @property
    def ok(self) -> bool:
        # NaN compares False: not ok.
        if self.keras_dev is None:
            return bool(self.max_rel <= self.tolerance)
        if self.keras_dev <= self.multiple * self.torch_dev:
            return True
        return bool(self.keras_dev <= self.bound and self.max_rel <= self.tolerance)


def tap_result(name: str, kind: str, reference, other, tolerance: float = EVAL_TOLERANCE,
               float64=None, measure=difference, torch_variant=None) -> TapResult:
    """The row for `other` (Keras) against `reference` (PyTorch), same layout, by `measure`
    (metrics.difference or one with the same signature); with `float64`, the PyTorch float64
    value, each side's deviation from it by the same measure (PyTorch's the larger of
    `reference`'s and `torch_variant`'s, its run on its native kernels)."""
    deviations = {}
    if float64 is not None:
        torch_dev = max(measure(float64, t).max_rel for t in (reference, torch_variant) if t is not None)
        deviations = {"torch_dev": torch_dev, "keras_dev": measure(float64, other).max_rel}
    return TapResult.of(name, kind, getattr(reference, "shape", ()), measure(reference, other), tolerance,
                        **deviations)


@dataclass
class ParityReport:
    model: str
    mode: str
    input_shape: tuple[int, ...]  # NCHW, as given to PyTorch
    rows: list[TapResult] = field(default_factory=list)
    top1_agreement: float | None = None
    topk_agreement: float | None = None
    k: int | None = None
    # frameworks.environment(): backend, versions; and the devices and TF32 settings that ran
    environment: dict = field(default_factory=dict)
    precision: str = "float32"
    reference: str | None = None  # "float64" when every row carries the deviations from it
    # Train mode with the reference: how many ReLU gates each run's float64 step took from that
    # run, where rounding decided them (see gates); {"torch", "torch_native", "keras"}.
    followed_gates: dict | None = None

    @property
    def ok(self) -> bool:
        # With the reference, top-1 agreement is reported, not required: the output row's envelope
        # already keeps Keras' argmax on float64's wherever float64's margin exceeds twice the
        # bound, and nearer ties flip in PyTorch's own half-precision run too (resnet50, bfloat16:
        # one image of two).
        top1 = self.reference is not None or self.top1_agreement in (None, 1.0)
        return all(r.ok for r in self.rows) and top1

    @property
    def first_divergence(self) -> str | None:
        """The first tap, in forward order, that breaks its bound (None when all hold; "top-1"
        when only the predicted classes differ)."""
        return next((r.name for r in self.rows if not r.ok), None if self.ok else "top-1")

    def worst(self, kind: str | None = None) -> TapResult | None:
        """The row of `kind` farthest from its bound (by keras_dev / bound with a reference)."""
        rows = [r for r in self.rows if kind is None or r.kind == kind]
        if self.reference:
            return max(rows, key=lambda r: r.keras_dev / r.bound if r.bound else float("inf"), default=None)
        return max(rows, key=lambda r: r.max_rel, default=None)

    def table(self, every_block: bool = False) -> str:
        """A readable table; blocks are listed only when they fail unless every_block=True. With
        a float64 reference, each row shows torch vs keras, each against float64, and the bound
        on keras vs float64."""
        ref = self.reference
        cols = f"{'torch-keras':>11} {'torch-f64':>10} {'keras-f64':>10} {'bound':>9}" if ref else \
            f"{'max_abs':>10} {'max_rel':>10} {'mean_abs':>10}"
        head = f"{'tap':<28} {'kind':<9} {'shape':<20} {cols}  ok"
        env = self.environment
        on = f", Keras on {env['backend']}" if env.get("backend") else ""
        tf32 = env.get("tf32", {}).get("allowed")
        lines = [f"{self.model} ({self.mode} mode, {self.precision}"
                 + (f", envelope {ENVELOPE_MULTIPLE:g}x PyTorch's deviation from {ref}" if ref else "")
                 + ("" if tf32 is None else f", TF32 {'on' if tf32 else 'off'}")
                 + f"), input {tuple(self.input_shape)}{on}", head, "-" * len(head)]
        for r in self.rows:
            if r.kind in ("block", "gradient", "parameter", "buffer") and r.ok and not every_block:
                continue
            values = (f"{r.max_rel:>11.2e} {r.torch_dev:>10.2e} {r.keras_dev:>10.2e} {r.bound:>9.1e}" if ref
                      else f"{r.max_abs:>10.2e} {r.max_rel:>10.2e} {r.mean_abs:>10.2e}")
            lines.append(f"{r.name:<28} {r.kind:<9} {str(r.shape):<20} {values}  {'yes' if r.ok else 'NO'}")
        for kind in ("block", "gradient", "parameter", "buffer"):
            w = self.worst(kind)
            if w is not None and not every_block:
                rows = [r for r in self.rows if r.kind == kind]
                figure = (f"keras-f64 {w.keras_dev:.2e}, torch-f64 {w.torch_dev:.2e} (bound {w.bound:.1e})" if ref
                          else f"max_rel {w.max_rel:.2e} (bound {w.tolerance:.0e})")
                lines.append(f"{len(rows)} {kind}s, worst {w.name}: {figure}")
        if self.followed_gates and any(self.followed_gates.values()):
            runs = ", ".join(f"{run} {n}" for run, n in self.followed_gates.items())
            lines.append(f"ReLU gates decided by rounding, taken from each run by its float64 step: {runs}")
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
            "precision": self.precision,
            "reference": self.reference,
            "envelope_multiple": ENVELOPE_MULTIPLE if self.reference else None,
            "ok": self.ok,
            "first_divergence": self.first_divergence,
            "top1_agreement": self.top1_agreement,
            "topk_agreement": self.topk_agreement,
            "k": self.k,
            "environment": self.environment,
            "followed_gates": self.followed_gates,
            "rows": [dict(asdict(r), ok=r.ok, bound=r.bound, shape=list(r.shape)) for r in self.rows],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


class VerificationError(Exception):
    """A written model (a converted checkpoint, an export) breaks the parity contract against
    its source; the file was not kept."""

    def __init__(self, report: ParityReport, dst: Path, what: str = "the converted model"):
        self.report = report
        super().__init__(f"{dst} was not written: {what} diverges first at {report.first_divergence}")
