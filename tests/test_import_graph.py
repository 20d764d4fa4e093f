"""The import graph of shrink/, read from the source: no cycles, and no module reaches into another
package's private names. Function-level imports count: a late import still ties two modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "shrink"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import of `name`, resolved to shrink modules."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            taken = [alias.name for alias in node.names]
            submodules = [f"{base}.{n}" for n in taken if f"{base}.{n}" in known]
            out.append((base, [n for n in taken if f"{base}.{n}" not in known]))
            out += [(sub, []) for sub in submodules]
    resolved = []
    for target, taken in out:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.append((target, taken))
    return resolved


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: {t for t, _ in imports(name, path, set(found))} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_under_shrink():
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def stage_of(name: str) -> str:
    """shrink.prune.planner -> shrink.prune; a top-level module is its own unit."""
    return ".".join(name.split(".")[:2])


def test_no_module_imports_another_packages_private_names():
    found = modules()
    known = set(found)
    offences = []
    for name, path in found.items():
        for target, taken in imports(name, path, known):
            private = [n for n in taken if n.startswith("_") and not n.startswith("__")]
            if private and stage_of(target) != stage_of(name):
                offences.append(f"{name} takes {', '.join(private)} from {target}")
    assert offences == []
