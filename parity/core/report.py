"""What a comparison found, tap by tap: rows with their bounds, the verdict, a table and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .metrics import Difference, difference

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

    @classmethod
    def of(cls, name: str, kind: str, shape, diff: Difference, tolerance: float) -> "TapResult":
        return cls(name, kind, tuple(shape), diff.max_abs, diff.max_rel, diff.mean_abs, tolerance)

    @property
    def ok(self) -> bool:
        return bool(self.max_rel <= self.tolerance)  # NaN compares False: not ok


def tap_result(name: str, kind: str, reference, other, tolerance: float = EVAL_TOLERANCE) -> TapResult:
    """The row for `other` against `reference` (same layout), by metrics.difference."""
    return TapResult.of(name, kind, getattr(reference, "shape", ()), difference(reference, other), tolerance)


@dataclass
class ParityReport:
    model: str
    mode: str
    input_shape: tuple[int, ...]  # NCHW, as given to PyTorch
    rows: list[TapResult] = field(default_factory=list)
    top1_agreement: float | None = None
    topk_agreement: float | None = None
    k: int | None = None
    environment: dict = field(default_factory=dict)  # frameworks.environment(): backend, versions

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
        on = f", Keras on {self.environment['backend']}" if self.environment.get("backend") else ""
        lines = [f"{self.model} ({self.mode} mode), input {tuple(self.input_shape)}{on}", head, "-" * len(head)]
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
            "environment": self.environment,
            "rows": [dict(asdict(r), ok=r.ok, shape=list(r.shape)) for r in self.rows],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


class VerificationError(Exception):
    """A written model (a converted checkpoint, an export) breaks the parity contract against
    its source; the file was not kept."""

    def __init__(self, report: ParityReport, dst: Path, what: str = "the converted model"):
        self.report = report
        super().__init__(f"{dst} was not written: {what} diverges first at {report.first_divergence}")
