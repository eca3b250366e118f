"""Which registered architecture a state_dict belongs to, read from its tensors alone.

Spec-driven, no table of layouts: each registered variant's plan says which keys its
state_dict has and each key's shape (`expected_shapes`), with num_classes taken from the
file's `fc.weight` (no `fc` at all: a headless backbone, include_top=False). A file matches a
variant when the keys and every shape are exactly the plan's (num_batches_tracked may be
present or absent: older checkpoints lack it). One match is the answer; several are
ambiguous, none is unknown; both errors list the candidates, the closest first, with what
differs.
"""

from __future__ import annotations

from collections.abc import Mapping

import resnet_spec as rs

from .errors import CheckpointError


class ArchitectureError(CheckpointError):
    """No architecture, or more than one, fits the tensors; or not the one asked for."""


def expected_shapes(spec: rs.ResNetSpec) -> dict[str, tuple[int, ...]]:
    """Every state_dict key of the network `spec` describes (counters aside) and its PyTorch
    shape, in resnet_torch's order (the plan's)."""
    return rs.plan(spec).state_dict_shapes()


class Difference:
    """How a file's (key -> shape) differs from one spec's."""

    def __init__(self, spec: rs.ResNetSpec, shapes: Mapping[str, tuple[int, ...]]):
        self.spec = spec
        want, counters = expected_shapes(spec), set(rs.plan(spec).counter_keys())
        self.missing = [k for k in want if k not in shapes]
        self.unexpected = [k for k in shapes if k not in want and k not in counters]
        self.shapes = [(k, tuple(shapes[k]), want[k]) for k in want if k in shapes and tuple(shapes[k]) != want[k]]

    @property
    def size(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.shapes)

    def describe(self, limit: int = 4) -> str:
        def some(items):
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({some(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({some(self.unexpected)})")
        if self.shapes:
            pairs = [f"{k}: file {got} vs {self.spec.name} {want}" for k, got, want in self.shapes]
            parts.append(f"{len(self.shapes)} shape(s) differ ({some(pairs)})")
        return "; ".join(parts) or "no difference"


def _options(shapes: Mapping[str, tuple[int, ...]], num_classes: int | None) -> dict:
    """num_classes from the classifier's shape (or the user); a file without one is a backbone."""
    if "fc.weight" in shapes or num_classes is not None:
        fc = shapes.get("fc.weight")
        return {"num_classes": num_classes if num_classes is not None else int(fc[0])}
    return {"include_top": False}


def identify(
    shapes: Mapping[str, tuple[int, ...]],
    arch: str | None = None,
    num_classes: int | None = None,
    source: str = "checkpoint",
) -> rs.ResNetSpec:
    """The spec whose state_dict has exactly these keys and shapes (see the module docstring).
    With `arch`, only that architecture is tried, and a mismatch lists its differences."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    options = _options(shapes, num_classes)
    if arch is not None:
        spec = rs.get(arch, **options)
        diff = Difference(spec, shapes)
        if diff.size:
            raise ArchitectureError(f"{source} does not fit {arch} ({_describe_options(options)}): {diff.describe(limit=6)}")
        return spec

    diffs = sorted((Difference(rs.get(name, **options), shapes) for name in rs.names()), key=lambda d: d.size)
    exact = [d.spec for d in diffs if d.size == 0]
    if len(exact) == 1:
        return exact[0]
    if exact:
        raise ArchitectureError(
            f"{source} fits several architectures equally: {', '.join(s.name for s in exact)}; pass --arch NAME"
        )
    closest = "; ".join(f"{d.spec.name}: {d.describe(limit=2)}" for d in diffs[:3])
    raise ArchitectureError(
        f"{source} matches no known architecture ({_describe_options(options)}, {len(shapes)} tensors). "
        f"Closest candidates: {closest}. Pass --arch NAME to see every difference for one of them "
        "(`resnet-parity list` names them all)."
    )


def _describe_options(options: dict) -> str:
    return f"num_classes={options['num_classes']}" if "num_classes" in options else "no classifier"
