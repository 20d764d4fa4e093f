"""Fixtures for the quantize tests: a tiny fp32 ONNX file exported once per session, and splits."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tiny models live with the export tests; reuse them rather than keep two copies.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))

from export_fixtures import tiny_loaded, tiny_split  # noqa: E402

from shrink.export import ExportConfig, export  # noqa: E402


@pytest.fixture(scope="session")
def fp32_onnx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quantize") / "tiny.onnx"
    export(tiny_loaded(), ExportConfig(), out)
    return out


@pytest.fixture
def model_copy(fp32_onnx, tmp_path) -> Path:
    """A private copy, so a test can check its input is never modified."""
    path = tmp_path / "model.onnx"
    path.write_bytes(fp32_onnx.read_bytes())
    return path


@pytest.fixture
def real_split():
    return tiny_split(n=96)  # not flagged synthetic: stands in for real images


@pytest.fixture
def random_split():
    return tiny_split(n=96, synthetic=True)
