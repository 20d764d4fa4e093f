"""Fixtures for the bench tests (the models themselves live in bench_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_fixtures import export_onnx, tiny_convnet


@pytest.fixture(scope="session")
def onnx_pair(tmp_path_factory) -> tuple[Path, Path]:
    """(dense, pruned): 16 channels (a multiple of 8 and 16) and 12 channels (neither)."""
    root = tmp_path_factory.mktemp("bench-models")
    dense = export_onnx(tiny_convnet(16), root / "dense.onnx")
    pruned = export_onnx(tiny_convnet(12), root / "pruned.onnx")
    return dense, pruned

