"""ExportConfig and the thresholds every export is checked against.

The thresholds are named constants so a reader (and a test) can see exactly what "verified" means.
"""

from __future__ import annotations

from dataclasses import dataclass

from shrink.config_io import Record
from shrink.errors import ShrinkValueError

# Pinned opset. 18 is what the dynamo exporter emits natively in torch 2.9+; 17 is the oldest accepted.
ONNX_OPSET = 18
MIN_OPSET = 17

# Names of the graph input and output in every exported file.
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"

# Trace with batch >= 2: at batch 1 the exporters specialize the batch dimension to a constant.
TRACE_BATCH = 2
# Parity is checked at these batch sizes, which also proves the batch axis is really dynamic.
PARITY_BATCHES = (1, 3)

# fp32 parity: |onnx - torch| <= ATOL + RTOL * |torch|, elementwise (numpy.allclose semantics).
FP32_RTOL = 1e-3
FP32_ATOL = 1e-4
# Every eval image must get the same top-1 class (near-ties within the tolerance are reported apart).
MIN_TOP1_AGREEMENT = 1.0

# fp16 files are compared with the fp32 PyTorch model: signal-to-quantization-noise ratio of the
# logits (dB) and top-1 agreement. fp16 keeps ~11 bits of mantissa, i.e. ~66 dB per op in theory;
# a deep net accumulates error, and 35 dB still means the noise is ~1.8% of the signal amplitude.
FP16_MIN_SQNR_DB = 35.0
FP16_MIN_TOP1_AGREEMENT = 0.99

EXPORTERS = ("auto", "dynamo", "torchscript")
PRECISIONS = ("fp32", "fp16")


def max_opset() -> int:
    """The newest default-domain opset the installed onnx defines: it cannot check a newer graph.
    (The exporter's own limit is checked on its output: the graph must carry the opset asked for.)"""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


@dataclass(frozen=True)
class ExportConfig(Record):
    """How to export and verify. `exporter="auto"` tries dynamo, then falls back to TorchScript and
    logs why; naming one exporter disables the fallback."""

    LABEL = "export config keys"

    exporter: str = "auto"
    opset: int = ONNX_OPSET
    precision: str = "fp32"
    dynamic_batch: bool = True
    slim: bool = False  # run onnxslim, then verify the slimmed graph again
    provider: str = "cpu"  # onnxruntime provider used for the parity check
    eval_limit: int | None = None  # images of the eval split checked for top-1 agreement; None: all
    eval_batch_size: int = 256
    seed: int = 0  # random parity inputs when no eval split is given

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise ShrinkValueError(f"exporter must be one of {', '.join(EXPORTERS)}; got {self.exporter!r}")
        if self.precision not in PRECISIONS:
            raise ShrinkValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        newest = max_opset()
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not MIN_OPSET <= self.opset <= newest:
            raise ShrinkValueError(f"opset must be an integer from {MIN_OPSET} to {newest} (the newest this onnx "
                                   f"{_onnx_version()} knows), got {self.opset!r}")
        if self.eval_limit is not None and (isinstance(self.eval_limit, bool) or self.eval_limit < 1):
            raise ShrinkValueError(f"eval_limit must be >= 1 (or None for the whole split), got {self.eval_limit!r}")
        if self.eval_batch_size < 1:
            raise ShrinkValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")

