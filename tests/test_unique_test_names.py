"""pytest's default import mode needs unique test-module basenames across tests/ (two
test_config.py files once stopped the whole suite from collecting)."""

from collections import Counter
from pathlib import Path


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in Path(__file__).resolve().parent.rglob("*.py") if p.name != "conftest.py")
    assert [n for n, c in names.items() if c > 1] == []
