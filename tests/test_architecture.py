"""The house's floors, read from the source: every import (inside functions too) of every module
of the four packages, checked against the dependency direction of DESIGN.md."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("resnet_spec", "resnet_torch", "resnet_tf", "parity")

# Which project modules each floor may import (its own included). parity's front door
# (parity/__init__.py and the public parity.testing) stands above every floor.
FLOORS = ["resnet_spec", "resnet_torch resnet_tf", "parity.core", "parity.files", "parity.apps", "parity.cli"]
FRONT_DOOR = {"parity", "parity.testing"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def floor_of(module: str) -> int:
    for i, floor in enumerate(FLOORS):
        if any(module == f or module.startswith(f + ".") for f in floor.split()):
            return i
    return len(FLOORS)  # the front door


def allowed(importer: str, imported: str) -> bool:
    if imported in FRONT_DOOR:
        return importer in FRONT_DOOR
    if importer.split(".")[0] in ("resnet_torch", "resnet_tf"):  # two builders, side by side
        return imported.split(".")[0] in ("resnet_spec", importer.split(".")[0])
    return floor_of(imported) <= floor_of(importer)


def resolve(name: str) -> str | None:
    """The project module `name` refers to (a dotted name, maybe an attribute of a module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


class Imports(ast.NodeVisitor):
    """A module's imports of project modules, and its uses of their private names."""

    def __init__(self, module: str, is_package: bool):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.edges: set[str] = set()
        self.private: list[str] = []
        self.aliases: dict[str, str] = {}  # local name -> project module

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def add(self, target: str | None) -> None:
        if target and target != self.module and not self.module.startswith(target + "."):
            self.edges.add(target)

    def visit_Import(self, node):
        for alias in node.names:
            target = resolve(alias.name)
            self.add(target)
            if target and alias.asname:
                self.aliases[alias.asname] = target
            elif target:
                self.aliases[alias.name.split(".")[0]] = resolve(alias.name.split(".")[0])

    def visit_ImportFrom(self, node):
        base = self.absolute(node)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            target = resolve(full) if full in MODULES else resolve(base)
            self.add(target)
            if full in MODULES:
                self.aliases[alias.asname or alias.name] = full
            elif target and alias.name.startswith("_") and not alias.name.startswith("__"):
                self.private.append(f"{self.module} imports {target}.{alias.name}")

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id in self.aliases:
            target = self.aliases[node.value.id]
            if node.attr.startswith("_") and not node.attr.startswith("__") and target != self.module:
                self.private.append(f"{self.module} uses {target}.{node.attr}")
        self.generic_visit(node)


def scan() -> dict[str, Imports]:
    out = {}
    for module, path in MODULES.items():
        visitor = Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), str(path)))
        out[module] = visitor
    return out


SCANNED = scan()


def test_the_scan_sees_the_house():
    # A scanner that finds nothing would pass every rule: check it sees known imports.
    assert "parity.core.porting" in SCANNED["parity.files.keras_archive"].edges
    assert "parity.core.comparison" in SCANNED["parity.files.convert"].edges  # imported inside a function
    assert "resnet_spec.plan" in SCANNED["resnet_spec.cost"].edges
    assert {"parity.core", "parity.files", "parity.apps", "parity.cli"} <= set(MODULES)


def test_no_module_imports_from_a_higher_floor():
    wrong = [f"{m} -> {t}" for m, v in SCANNED.items() for t in sorted(v.edges) if not allowed(m, t)]
    assert not wrong, "imports against the floors:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: v.edges for m, v in SCANNED.items()}
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_uses_another_modules_private_names():
    private = [p for v in SCANNED.values() for p in v.private]
    assert not private, "\n".join(private)


@pytest.mark.parametrize("rule", ["floor", "private"])
def test_the_rules_catch_what_they_forbid(rule, tmp_path):
    # The checks above could pass vacuously; a module written to break each rule must fail it.
    if rule == "floor":
        assert not allowed("parity.core.porting", "parity.files.loading")
        assert not allowed("parity.files.convert", "parity.cli.errors")
        assert not allowed("resnet_torch.model", "resnet_tf.layers")
        assert not allowed("parity.apps.predict", "parity")
        assert allowed("parity.cli.check", "parity.core.comparison")
    else:
        visitor = Imports("parity.apps.x", False)
        visitor.visit(ast.parse("from ..files.checkpoints import _short\nfrom ..core import porting\nporting._same(1)"))
        assert len(visitor.private) == 2, visitor.private
