"""What checking an exported file found: its rows against each framework, the agreement of a
quantized file's classes with PyTorch float32 on real images, and the bounds they are held to.

A float32 export is held to the parity contract's bound (parity.core.report.EVAL_TOLERANCE,
relative to max(1, max|reference|), by parity.core.metrics). A quantized LiteRT file cannot
meet it; it is held to QUANTIZATION_BOUNDS instead. Measured (README, "Deploy") on randomised
resnet18, resnet50, resnext50_32x4d, resnest50, resnet50d and preact_resnet50 and on the
trained CIFAR checkpoints resnet20 and resnet56, on random and on real images, the largest
errors were 8.6e-4 (float16) and 3.4e-2 (dynamic-range int8); the bounds leave about twice
that, far below what a mis-mapped layer gives (errors of order one). The least agreements
were 29 of 32 images for top-1 (both quantizations, randomised resnest50) and 26 of 32 for
the top-5 set (int8, randomised resnet50): randomised networks give real images nearly the
same logits (top-1 margins of 1e-5 to 2e-2 where the logits spread 0.6), near-ties any
rounding can flip. The trained networks agreed on 31 or 32 of 32.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ...core.report import EVAL_TOLERANCE, TapResult


@dataclass(frozen=True)
class QuantizationBound:
    max_error: float  # relative, by metrics.relative_error, against PyTorch float32
    top1: float  # least fraction of real images whose top-1 class matches PyTorch float32's
    top5: float  # least fraction whose set of top-5 classes matches


QUANTIZATION_BOUNDS = {
    "float16": QuantizationBound(max_error=2e-3, top1=0.87, top5=0.9),
    "dynamic-int8": QuantizationBound(max_error=6e-2, top1=0.87, top5=0.75),
}


def max_error_bound(quantize: str) -> float:
    """The bound on the relative error of an export made with `quantize` ("none": the contract's)."""
    return QUANTIZATION_BOUNDS[quantize].max_error if quantize in QUANTIZATION_BOUNDS else EVAL_TOLERANCE


@dataclass(frozen=True)
class Agreement:
    """How often a file's classes match the reference's on `images` real images."""

    name: str
    images: int
    top1: float
    top5: float
    bound: QuantizationBound

    @property
    def ok(self) -> bool:
        return bool(self.top1 >= self.bound.top1 and self.top5 >= self.bound.top5)


@dataclass
class ExportReport:
    model: str
    format: str
    framework: str  # the exporter
    quantize: str
    input_layout: str  # NCHW or NHWC
    rows: list[TapResult] = field(default_factory=list)  # one per check input, per reference
    agreements: list[Agreement] = field(default_factory=list)
    environment: dict = field(default_factory=dict)  # frameworks.environment() and the runtime's version

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows) and all(a.ok for a in self.agreements)

    @property
    def first_divergence(self) -> str | None:
        """The first check that breaks its bound (None when all hold)."""
        return next((c.name for c in [*self.rows, *self.agreements] if not c.ok), None)

    def worst(self) -> TapResult | None:
        return max(self.rows, key=lambda r: r.max_rel, default=None)

    def table(self) -> str:
        quantized = "" if self.quantize == "none" else f", {self.quantize}"
        head = f"{'check':<40} {'shape':<12} {'max_abs':>10} {'max_rel':>10} {'bound':>8}  ok"
        lines = [f"{self.model}: {self.format} from {self.framework}{quantized}, input {self.input_layout}",
                 head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.name:<40} {str(r.shape):<12} {r.max_abs:>10.2e} {r.max_rel:>10.2e} "
                         f"{r.tolerance:>8.0e}  {'yes' if r.ok else 'NO'}")
        for a in self.agreements:
            lines.append(f"{a.name}: top-1 agreement {a.top1:.0%} (at least {a.bound.top1:.0%}), top-5 "
                         f"{a.top5:.0%} (at least {a.bound.top5:.0%}) on {a.images} images  "
                         f"{'yes' if a.ok else 'NO'}")
        lines.append("PASS" if self.ok else f"FAIL: first divergence at {self.first_divergence}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "format": self.format,
            "framework": self.framework,
            "quantize": self.quantize,
            "input_layout": self.input_layout,
            "ok": self.ok,
            "first_divergence": self.first_divergence,
            "environment": self.environment,
            "rows": [dict(asdict(r), ok=r.ok, shape=list(r.shape)) for r in self.rows],
            "agreements": [dict(asdict(a), ok=a.ok) for a in self.agreements],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)
