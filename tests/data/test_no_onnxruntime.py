"""Training code must not load onnxruntime: the data and recover packages are what a training
process (and each torchrun worker) imports, and onnxruntime there costs start-up time and memory
for nothing. Checked in a fresh interpreter, where nothing else has imported it yet."""

from __future__ import annotations

import subprocess
import sys

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
import shrink.data, shrink.recover
for name in shrink.data.__all__:
    getattr(shrink.data, name)  # the lazily loaded names too
for package in (shrink.data, shrink.recover):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
print(sorted(m for m in sys.modules if m == "onnxruntime" or m.startswith("onnxruntime.")))
"""


def test_data_and_recover_import_without_onnxruntime():
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"onnxruntime was imported: {done.stdout.strip()}"
