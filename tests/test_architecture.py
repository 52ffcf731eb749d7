"""The package's layering, checked: no import cycle, imports flow one way, small modules.

The graph counts every import, including those inside functions, under
``TYPE_CHECKING`` and in platform branches: an import that only "works"
because it runs late is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sos"

# Lower layers first; a module may import only from its own layer or lower ones.
LAYERS = [
    ["sos.errors"],
    ["sos.format"],
    ["sos.storage"],
    ["sos.txn"],
    ["sos.watch"],
    ["sos.core"],
    ["sos.git", "sos.interchange"],
    ["sos.check"],
    ["sos.cli", "sos.__main__"],
]
CONCRETE_STORAGES = [
    "sos.storage.local",
    "sos.storage.memory",
    "sos.storage.windows",
    "sos.storage.s3",
]
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every sos module ``path`` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from pkg import mod" imports the module pkg.mod when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def layer_of(name: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if any(name == top or name.startswith(top + ".") for top in layer):
            return i
    return None


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_imports_inside_functions_and_type_checking(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sos.b import x\n"
        "def f():\n    from . import c\n"
    )
    path = tmp_path / "a.py"
    path.write_text(source)
    assert imports_of("sos.a", path, {"sos.a", "sos.b", "sos.c"}) == {"sos.b", "sos.c"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle() -> None:
    assert find_cycle(graph()) is None


def test_imports_flow_down_the_layers() -> None:
    wrong = []
    for name, targets in graph().items():
        here = layer_of(name)
        for target in targets:
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_only_the_storage_package_imports_a_concrete_storage() -> None:
    wrong = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        if not name.startswith("sos.storage")
        for target in targets
        if any(target == c or target.startswith(c + ".") for c in CONCRETE_STORAGES)
    ]
    assert wrong == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_over_the_limit(name: str) -> None:
    lines = modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name}: {lines} lines"
