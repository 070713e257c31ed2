"""The package's layout rules (issue #14): no module over ~700 lines, no module reading another
module's underscore names, no import cycle between the package's modules."""
from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zeroproof_nb"
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def test_no_module_over_700_lines():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_module_reads_another_modules_underscore_names():
    bad = []
    for name, path in _modules().items():
        if name.endswith("__main__"):
            continue  # importing it runs the command
        tree = ast.parse(path.read_text())
        mod = importlib.import_module(name)
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    bound = a.asname or a.name
                    if a.name.startswith("_") and not a.name.startswith("__") \
                            and not inspect.ismodule(getattr(mod, bound, None)):
                        bad.append(f"{name}: from {node.module} import {a.name}")
                    if inspect.ismodule(getattr(mod, bound, None)):
                        aliases.add(bound)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    aliases.add(a.asname or a.name.split(".")[0])
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and node.attr.startswith("_") \
                    and not node.attr.startswith("__"):
                bad.append(f"{name}: {node.value.id}.{node.attr}")
    assert not bad, bad


def test_no_import_cycle_between_package_modules():
    """Module-level imports only (imports inside functions run after loading)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        for node in tree.body:
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = _resolve(name, node, is_package)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in mods and t != name:
                    graph[name].add(t)
    # a package's __init__ importing its submodules is not a cycle with them
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t] if t in stack else [m, t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles
