"""fp16 export checked on the GPU (run on the device with `make test-gpu`)."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
from export_fixtures import tiny_loaded, tiny_split

from shrink.export import ExportConfig, export

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                       reason="needs onnxruntime-gpu (CUDAExecutionProvider)"),
]


def test_fp16_export_parity_on_cuda(tmp_path):
    result = export(tiny_loaded(), ExportConfig(precision="fp16", provider="cuda"), tmp_path / "m16.onnx",
                    eval_split=tiny_split())
    assert result.parity.provider == "CUDAExecutionProvider" and result.parity.passed
    assert result.parity.eval_sqnr_db > 35 and result.parity.top1_agreement >= 0.99
