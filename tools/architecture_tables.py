"""Print the per-package module tables of docs/ARCHITECTURE.md from each module's docstring.

Run it after adding, moving or removing a module and paste the output into the doc; the test
tests/test_architecture_doc.py fails when a module under shrink/ is missing from the doc.
"""

import ast
import pathlib
from collections import defaultdict

root = pathlib.Path(__file__).resolve().parents[1]
by_package = defaultdict(list)
for path in sorted((root / "shrink").rglob("*.py")):
    rel = path.relative_to(root)
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    package = rel.parent.as_posix()
    by_package[package].append((rel.name, first))
for package, rows in by_package.items():
    print(f"\n### `{package}/`\n\n| file | what it does |\n|---|---|")
    for name, first in rows:
        print(f"| `{name}` | {first.replace('|', '/') or '—'} |")
