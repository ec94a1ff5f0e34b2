"""The layout holds: rings import one way, features see only their context, no cycles.

Imports are read from the source (every ``import``, including type-only and
function-local ones), so a cycle cannot hide behind ``TYPE_CHECKING`` or a lazy
import. See docs/design.md for the rooms these tests keep apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VRM = ROOT / "vrm"
#: The composition root: the one runtime module that may know the features.
COMPOSITION_ROOT = "vrm.node.node"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(VRM.rglob("*.py"))}


def _imports(name: str) -> Iterator[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement in ``name``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [a.name for a in node.names]
            # ``from pkg import module`` imports the module itself, not a name of pkg.
            modules = [n for n in names if f"{base}.{n}" in MODULES]
            for n in modules:
                yield f"{base}.{n}", []
            if len(modules) < len(names):
                yield base, [n for n in names if n not in modules]


def _edges(name: str) -> set[str]:
    return {target for target, _ in _imports(name) if target in MODULES and target != name}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    graph = {m: _edges(m) for m in MODULES}

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for m in MODULES:
        if m not in index:
            visit(m)
    return found


def test_no_import_cycle_anywhere_in_vrm() -> None:
    assert _cycles() == []


def test_rings_import_one_way() -> None:
    # cli -> node -> storage -> protocol; errors is shared by all.
    inner_of = {
        "vrm.protocol": ("vrm.storage", "vrm.node", "vrm.cli", "vrm.testing"),
        "vrm.storage": ("vrm.node", "vrm.cli", "vrm.testing"),
        "vrm.node": ("vrm.cli", "vrm.testing"),
    }
    bad = []
    for name in MODULES:
        for ring, outer in inner_of.items():
            if name == ring or name.startswith(ring + "."):
                bad += [(name, t) for t in _edges(name) if t.startswith(outer)]
    assert bad == []


def test_the_runtime_knows_no_feature() -> None:
    runtime = [
        m
        for m in MODULES
        if m.startswith("vrm.node") and not m.startswith("vrm.node.features")
        if m != COMPOSITION_ROOT
    ]
    bad = [(m, t) for m in runtime for t in _edges(m) if t.startswith("vrm.node.features")]
    assert bad == []


def test_features_never_import_the_composition_root() -> None:
    features = [m for m in MODULES if m.startswith("vrm.node.features")]
    bad = [
        (m, t)
        for m in features
        for t, names in _imports(m)
        if t == COMPOSITION_ROOT or (t == "vrm.node" and "Node" in names)
    ]
    assert bad == []


def test_no_private_name_is_imported_from_another_module() -> None:
    bad = [
        (m, t, n)
        for m in MODULES
        for t, names in _imports(m)
        if t.startswith("vrm")
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert bad == []


def test_modules_stay_small() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_long_functions_say_why() -> None:
    # A function over the limit needs a comment with "long:" saying why it is one piece.
    bad = []
    for m, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = lines[node.lineno - 1 : node.end_lineno]
                if len(body) > MAX_FUNCTION_LINES and not any("# long:" in ln for ln in body):
                    bad.append(f"{m}.{node.name} ({len(body)} lines)")
    assert bad == []


def test_every_module_has_a_docstring() -> None:
    missing = [
        m
        for m, p in MODULES.items()
        if p.read_text(encoding="utf-8").strip()
        and ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert missing == []
