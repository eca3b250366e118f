"""Which registered architecture a state_dict belongs to, read from its tensors alone.

Spec-driven, no table of layouts: each registered variant's plan says which keys its
state_dict has and each key's shape (`expected_shapes`), with the classifier head read from
the file's `fc` tensors (`read_head`: a Linear, or the nn.Sequential a fine-tuning script puts
there; no `fc` at all: a headless backbone, include_top=False). A file matches a variant when
the keys and every shape are exactly the plan's (num_batches_tracked may be present or absent:
older checkpoints lack it). One match is the answer; several are ambiguous, none is unknown;
both errors list the candidates, the closest first, with what differs, and say what would make
the file readable where the keys show it (a prefix to take, a head to rename).
"""

from __future__ import annotations

from collections.abc import Mapping

import resnet_spec as rs

from .checkpoints import known_roots, shared_prefix
from .errors import CheckpointError

# Dropout keeps no tensor, so a file cannot tell its rate; PyTorch's default stands in. It changes
# nothing at inference, where dropout passes its input through.
ASSUMED_DROPOUT = 0.5
READABLE_HEADS = (f"{rs.CLASSIFIER} as one nn.Linear, or an nn.Sequential of Linear layers with ReLU and Dropout "
                  "between them (e.g. Dropout, Linear; or Linear, ReLU, Dropout, Linear)")


class ArchitectureError(CheckpointError):
    """No architecture, or more than one, fits the tensors; or not the one asked for."""


class HeadError(ArchitectureError):
    """The tensors under fc are no classifier head the spec can describe."""


def read_head(shapes: Mapping[str, tuple[int, ...]], source: str = "checkpoint",
              root: str = rs.CLASSIFIER) -> tuple[tuple, int] | None:
    """(the spec's `head`, num_classes) read from the tensors under fc, or None without any
    (a backbone).

    A state_dict keeps only the layers with weights: in an nn.Sequential head these are its
    Linear children, numbered by position (fc.1.weight: a Linear second in the Sequential). The
    positions between them hold layers without weights, read as fine-tuning code writes them:
    before the first Linear, Dropout (or two: ReLU then Dropout, which is the same at inference
    on the pooled features, all >= 0 after the network's last ReLU); between two Linears, a ReLU
    (or two: ReLU then Dropout). Anything else raises HeadError. `root` is the classifier's
    name (the notebook's: "classifier")."""
    if f"{root}.weight" in shapes:
        return (), int(shapes[f"{root}.weight"][0])
    children: dict[str, dict[str, tuple]] = {}
    for key, shape in shapes.items():
        if key.startswith(root + "."):
            index, _, leaf = key[len(root) + 1:].partition(".")
            children.setdefault(index, {})[leaf] = tuple(shape)
    if not children:
        return None

    def unreadable(why: str):
        return HeadError(f"{source}: cannot read its classifier head {root}: {why}. Readable heads: {READABLE_HEADS}")

    linears = {}
    for index, tensors in children.items():
        if not (index.isdigit() and set(tensors) == {"weight", "bias"} and len(tensors["weight"]) == 2):
            held = ", ".join(f"{leaf} {shape}" for leaf, shape in tensors.items())
            raise unreadable(f"{root}.{index} holds {held}, which is no Linear layer (a weight and a bias)")
        linears[int(index)] = tensors["weight"]
    head, previous = [], -1
    for n, index in enumerate(sorted(linears)):
        gap = index - previous - 1
        if gap > 2:
            raise unreadable(f"{gap} layers without weights sit between {root}.{previous} and {root}.{index}, "
                             "and a state_dict does not say which they are")
        if gap == 1:
            head.append(("dropout", ASSUMED_DROPOUT) if n == 0 else ("relu",))
        elif gap == 2:
            head += [("relu",), ("dropout", ASSUMED_DROPOUT)]
        if n < len(linears) - 1:
            head.append(("linear", int(linears[index][0])))
        previous = index
    return tuple(head), int(linears[previous][0])


def describe_head(spec: rs.ResNetSpec) -> str:
    """One line on the head read from a file, with what was assumed (a note of convert)."""
    parts = []
    root = rs.classifier_root(spec)
    for step in rs.plan(spec).head:
        if step.name.startswith(root + "."):
            parts.append(f"Linear({step.in_features}, {step.out_features})" if isinstance(step, rs.Linear)
                         else type(step).__name__)
    return (f"classifier head {root} read as nn.Sequential({', '.join(parts)}) (a state_dict keeps no "
            f"layer without weights: ReLU assumed between Linears, and Dropout's rate, which matters only in "
            f"training, as p={ASSUMED_DROPOUT})")


def expected_shapes(spec: rs.ResNetSpec) -> dict[str, tuple[int, ...]]:
    """Every state_dict key of the network `spec` describes (counters aside) and its PyTorch
    shape, in resnet_torch's order (the plan's)."""
    return rs.plan(spec).state_dict_shapes()


class Difference:
    """How a file's (key -> shape) differs from one spec's: its state_dict's, or `want` (key ->
    shape) where the file has other keys (keras_applications: layer names)."""

    def __init__(self, spec: rs.ResNetSpec, shapes: Mapping[str, tuple], want: Mapping[str, tuple] | None = None):
        self.spec = spec
        counters = set(rs.plan(spec).counter_keys()) if want is None else set()
        want = expected_shapes(spec) if want is None else want
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


def _options(shapes: Mapping[str, tuple[int, ...]], num_classes: int | None, source: str, root: str) -> dict:
    """The head and num_classes from the tensors under the classifier's name `root` (num_classes
    from the user if given); a file without them is a backbone."""
    read = read_head(shapes, source, root)
    if read is None:
        return {"num_classes": num_classes} if num_classes is not None else {"include_top": False}
    head, classes = read
    return {"num_classes": num_classes if num_classes is not None else classes, **({"head": head} if head else {})}


def identify(
    shapes: Mapping[str, tuple[int, ...]],
    arch: str | None = None,
    num_classes: int | None = None,
    source: str = "checkpoint",
) -> rs.ResNetSpec:
    """The spec whose state_dict has exactly these keys and shapes (see the module docstring).
    With `arch`, only that architecture is tried, and a mismatch lists its differences."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    by_root: dict[str, dict] = {}

    def options_for(name: str) -> dict:  # the head is read under each naming's classifier name
        root = rs.classifier_root(rs.get(name))
        if root not in by_root:
            by_root[root] = _options(shapes, num_classes, source, root)
        return by_root[root]

    if arch is not None:
        options = options_for(arch)
        spec = rs.get(arch, **options)
        diff = Difference(spec, shapes)
        if diff.size:
            raise ArchitectureError(f"{source} does not fit {arch} ({_describe_options(options)}): "
                                    f"{diff.describe(limit=6)}{hints(shapes, diff)}")
        return spec

    diffs = sorted((Difference(rs.get(name, **options_for(name)), shapes) for name in rs.names()),
                   key=lambda d: d.size)
    options = options_for(diffs[0].spec.name)
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
        f"Closest candidates: {closest}.{hints(shapes, diffs[0])} Pass --arch NAME to see every difference "
        "for one of them (`resnet-parity list` names them all)."
    )


def hints(shapes: Mapping[str, tuple[int, ...]], closest: Difference) -> str:
    """What would make a file that fits no variant readable, where its keys show it: most of
    its tensors under one prefix that is none of our names (the network under an attribute,
    beside other modules: --prefix takes it), or the tensors left over beside the closest
    variant all under one such name (a classifier head of another name)."""
    keys = list(shapes)
    foreign: dict[str, list[str]] = {}
    for k in keys:
        root = k.split(".", 1)[0]
        if root not in known_roots():
            foreign.setdefault(root, []).append(k)
    out = []
    left = {k.split(".", 1)[0] for k in closest.unexpected}
    own = {k.split(".", 1)[0] for k in expected_shapes(closest.spec)}
    under_most = max(foreign.values(), key=len) if foreign else []
    if 2 * len(under_most) > len(keys):
        prefix = shared_prefix(under_most) or under_most[0].split(".", 1)[0] + "."
        out.append(f"{len(under_most)} of its {len(keys)} tensors sit under {prefix!r}: if the network is there, "
                   f"--prefix {prefix} takes it and leaves the others out")
    elif len(left) == 1 and not left & own and not closest.shapes:
        (root,) = left
        under = closest.unexpected
        out.append(f"beside {closest.spec.name}'s layers it holds {len(under)} tensors under {root!r} "
                   f"({', '.join(under[:4])}{' ...' if len(under) > 4 else ''}), which {closest.spec.name} has "
                   f"not: if that is the classifier head, rename it {rs.classifier_root(closest.spec)!r} "
                   f"({READABLE_HEADS})")
    return "".join(f" Hint: {h}." for h in out)


def _describe_options(options: dict) -> str:
    if "num_classes" not in options:
        return "no classifier"
    head = f", head {options['head']}" if options.get("head") else ""
    return f"num_classes={options['num_classes']}{head}"
