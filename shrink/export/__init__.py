"""PyTorch -> verified ONNX: export, metadata, parity checks, optional onnxslim and fp16."""

from shrink.export.config import (
    FP16_MIN_SQNR_DB,
    FP16_MIN_TOP1_AGREEMENT,
    FP32_ATOL,
    FP32_RTOL,
    INPUT_NAME,
    ONNX_OPSET,
    OUTPUT_NAME,
    ExportConfig,
)
from shrink.export.metadata import ModelProvenance, provenance_for
from shrink.export.result import BatchParity, ExportResult, ParityReport
from shrink.export.stage import export
from shrink.onnxio.metadata import read_metadata, set_metadata
from shrink.onnxio.writing import save_model, staged_output

__all__ = [
    "BatchParity",
    "ExportConfig",
    "ExportResult",
    "FP16_MIN_SQNR_DB",
    "FP16_MIN_TOP1_AGREEMENT",
    "FP32_ATOL",
    "FP32_RTOL",
    "INPUT_NAME",
    "ModelProvenance",
    "ONNX_OPSET",
    "OUTPUT_NAME",
    "ParityReport",
    "export",
    "provenance_for",
    "read_metadata",
    "save_model",
    "set_metadata",
    "staged_output",
]
