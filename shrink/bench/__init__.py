"""Latency benchmarking people can trust: each candidate in its own worker processes, intervals over processes, machine capture, profiles.

    from shrink.bench import BenchConfig, OnnxCandidate, run_bench
    result = run_bench([OnnxCandidate("dense.onnx"), OnnxCandidate("pruned.onnx")], BenchConfig(threads=1))

Nothing here imports torch at import time; it is imported only for PyTorch candidates.
"""

from shrink.bench.api import run_bench
from shrink.bench.compare import ResultComparison, compare_results
from shrink.bench.config import BenchConfig, OnnxCandidate, TorchCandidate
from shrink.bench.results import BenchResult, CandidateResult, load_result

__all__ = [
    "BenchConfig",
    "BenchResult",
    "CandidateResult",
    "OnnxCandidate",
    "ResultComparison",
    "TorchCandidate",
    "compare_results",
    "load_result",
    "run_bench",
]
