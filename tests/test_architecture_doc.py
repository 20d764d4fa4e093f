"""docs/ARCHITECTURE.md must list exactly the modules under shrink/, package by package
(regenerate its tables with tools/architecture_tables.py)."""

from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _documented() -> dict[str, set[str]]:
    tables: dict[str, set[str]] = defaultdict(set)
    package = None
    for line in (REPO / "docs" / "ARCHITECTURE.md").read_text().splitlines():
        if line.startswith("### `shrink"):
            package = line.split("`")[1].rstrip("/")
        elif package and line.startswith("| `") and line.split("`")[1].endswith(".py"):
            tables[package].add(line.split("`")[1])
    return tables


def _on_disk() -> dict[str, set[str]]:
    tables: dict[str, set[str]] = defaultdict(set)
    for path in (REPO / "shrink").rglob("*.py"):
        tables[path.parent.relative_to(REPO).as_posix()].add(path.name)
    return tables


def test_architecture_doc_lists_exactly_the_modules_on_disk():
    documented, on_disk = _documented(), _on_disk()
    missing = sorted(f"{p}/{n}" for p in on_disk for n in on_disk[p] - documented.get(p, set()))
    stale = sorted(f"{p}/{n}" for p in documented for n in documented[p] - on_disk.get(p, set()))
    assert not missing, f"modules missing from docs/ARCHITECTURE.md: {missing}"
    assert not stale, f"docs/ARCHITECTURE.md lists modules that do not exist: {stale}"
